"""Run the window benchmark: `python -m bench.windows.run [--quick] [--samples N] [--single-samples N]
[--repeat N]`.

One run on one fresh tansu broker measures (a) the real worker on batched input (`--repeat` times, 3 by
default, each on fresh topics: one run on a shared machine moves by +-10 %), (b) the real worker on
single-sample input, (c) the floor (aiokafka + orjson decoding the batched topic, nothing else), verifies
every window of (a) and (b) against the raw topic and prints one table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
import yaml

from bench.windows.kafka_load import load, read_all
from bench.windows.verify import Verdict, expected_windows, verify
from bench.windows.workload import PARTITIONS, Workload
from watchkeeper.plumbing.broker import free_port, start_broker
from watchkeeper.plumbing.config import Config
from watchkeeper.plumbing.topics import ensure_topics, topic_plan

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    name: str
    samples: int
    seconds: float
    steady: float
    cpu: float
    rss: int
    verdict: Verdict | None = None

    @property
    def rate(self) -> float:
        return self.samples / self.seconds if self.seconds else 0.0


def make_config(bootstrap: str, tmp: Path) -> Config:
    suffix = uuid.uuid4().hex[:8]
    cfg = Config(data_dir=str(tmp / f"data-{suffix}"))
    cfg.kafka.bootstrap = bootstrap
    cfg.kafka.session_timeout = 6.0
    for key in ("samples", "aggregates", "alerts", "notifications", "deadletter"):
        setattr(cfg.kafka.topics, key, f"bench{suffix}.{key}")
    cfg.worker.app_id = f"wk-bench-{suffix}"
    cfg.worker.web_port = free_port()
    asyncio.run(ensure_topics(bootstrap, topic_plan(cfg.kafka.topics)))
    return cfg


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def run_worker(name: str, cfg: Config, tmp: Path, total_samples: int, expected: int) -> Result:
    cfg_path = tmp / f"{cfg.worker.app_id}.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    stats = tmp / f"{cfg.worker.app_id}.stats"
    log = open(tmp / f"{cfg.worker.app_id}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "bench.windows.worker", str(cfg_path), str(stats)],
                            stdout=log, stderr=subprocess.STDOUT, env=env(), cwd=ROOT)
    try:
        deadline = time.monotonic() + 1800
        lines: list[list[float]] = []
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if proc.poll() is not None:
                raise SystemExit(f"{name}: worker exited with {proc.returncode}; log in {log.name}")
            if stats.exists():
                lines = [[float(x) for x in ln.split()] for ln in stats.read_text().splitlines() if ln.strip()]
                if lines and lines[-1][1] >= total_samples:
                    break
        aggs = asyncio.run(read_all(cfg.kafka.bootstrap, cfg.kafka.topics.aggregates, PARTITIONS,
                                    expected=expected, idle=5.0))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    first = next(i for i, ln in enumerate(lines) if ln[1] > 0) - 1
    t0, cpu0 = lines[first][0], lines[first][2]
    end = max(r.timestamp for r in aggs) / 1000 if aggs else lines[-1][0]
    done = next(ln for ln in lines if ln[1] >= total_samples)
    lo = next(ln for ln in lines if ln[1] >= 0.1 * total_samples)
    hi = next(ln for ln in lines if ln[1] >= 0.9 * total_samples)
    steady = (hi[1] - lo[1]) / (hi[0] - lo[0]) if hi[0] > lo[0] else float("nan")
    result = Result(name, total_samples, max(end, done[0]) - t0, steady, done[2] - cpu0, int(lines[-1][3]))
    in_step = done[4] - lines[first][4]
    print(f"  {name}: CPU {1e6 * result.cpu / total_samples:.2f} µs/sample, of which "
          f"{1e6 * in_step / total_samples:.2f} in the window step (decode, windows, formatting)", flush=True)
    result.agg_values = [r.value for r in aggs]  # type: ignore[attr-defined]
    return result


def run_floor(bootstrap: str, topic: str, messages: int, samples: int) -> Result:
    out = subprocess.run([sys.executable, "-m", "bench.windows.floor", bootstrap, topic, str(messages)],
                         capture_output=True, text=True, env=env(), cwd=ROOT, timeout=900, check=True)
    r = orjson.loads(out.stdout.strip().splitlines()[-1])
    assert r["samples"] == samples, r
    return Result("floor: aiokafka + orjson decode (batched)", samples, r["seconds"], float("nan"), r["cpu"],
                  int(r["rss"]))


def variant(name: str, bootstrap: str, tmp: Path, wl: Workload, single: bool) -> tuple[Result, Config, int]:
    cfg = make_config(bootstrap, tmp)
    msgs = wl.single() if single else wl.batched()
    n_msgs = sum(len(m) for m in msgs.values())
    t = time.monotonic()
    asyncio.run(load(bootstrap, cfg.kafka.topics.samples, msgs))
    print(f"  loaded {n_msgs:,} messages into {cfg.kafka.topics.samples} in {time.monotonic() - t:.1f} s",
          flush=True)
    raw = asyncio.run(read_all(bootstrap, cfg.kafka.topics.samples, PARTITIONS, expected=n_msgs))
    exp = expected_windows([r.value for r in raw])
    assert len(exp) == wl.expected_windows, (len(exp), wl.expected_windows)
    total = wl.samples + wl.extra_samples  # + one watermark marker per source
    res = run_worker(name, cfg, tmp, total, wl.expected_windows)
    res.verdict = verify(exp, res.agg_values)  # type: ignore[attr-defined]
    return res, cfg, n_msgs


def table(results: list[Result], floor: Result) -> str:
    rows = ["| run | samples | samples/s (from start) | samples/s (steady) | CPU µs/sample | peak RSS MiB "
            "| windows verified/expected | ratio to floor |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in [*results, floor]:
        v = f"{r.verdict.verified:,}/{r.verdict.expected:,}" if r.verdict else "-"
        if r.verdict and not r.verdict.ok:
            v += (f" (missing {r.verdict.missing}, duplicates {r.verdict.duplicates}, wrong {r.verdict.wrong}, "
                  f"unexpected {r.verdict.unexpected})")
        steady = "-" if r.steady != r.steady else f"{r.steady:,.0f}"
        rows.append(f"| {r.name} | {r.samples:,} | {r.rate:,.0f} | {steady} | {1e6 * r.cpu / r.samples:.2f} | "
                    f"{r.rss / 2**20:,.0f} | {v} | {r.rate / floor.rate:.2f} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="100k batched once and 20k single samples (smoke)")
    ap.add_argument("--samples", type=int, default=1_000_000, help="batched run size")
    ap.add_argument("--single-samples", type=int, default=200_000, help="single-sample run size (0: skip)")
    ap.add_argument("--series", type=int, default=2_000)
    ap.add_argument("--repeat", type=int, default=3,
                    help="batched runs, each on fresh topics (the machine is shared: report their median)")
    args = ap.parse_args()
    if args.quick:
        args.samples, args.single_samples, args.repeat = 100_000, 20_000, 1
    with tempfile.TemporaryDirectory(prefix="wk-bench-") as d:
        tmp = Path(d)
        port = free_port()
        broker = start_broker("127.0.0.1", port, log_path=tmp / "tansu.log")
        bootstrap = f"127.0.0.1:{port}"
        try:
            results = []
            wl = Workload(samples=args.samples, series=args.series)
            print(f"batched: {wl.samples:,} samples, {wl.series:,} series, "
                  f"{wl.series_per_source * wl.seconds_per_message} points per message", flush=True)
            for i in range(args.repeat):
                name = "watchkeeper, batched (500 points/message)"
                if args.repeat > 1:
                    name += f", run {i + 1}/{args.repeat}"
                batched, run_cfg, run_msgs = variant(name, bootstrap, tmp, wl, False)
                results.append(batched)
                if i == 0:
                    cfg, n_msgs = run_cfg, run_msgs
            print("floor", flush=True)
            floor = run_floor(bootstrap, cfg.kafka.topics.samples, n_msgs, wl.samples + wl.extra_samples)
            if args.single_samples:
                swl = Workload(samples=args.single_samples, series=args.series)
                print(f"single-sample: {swl.samples:,} samples", flush=True)
                results.append(variant("watchkeeper, single-sample messages", bootstrap, tmp, swl, True)[0])
            print(table(results, floor))
            if args.repeat > 1:
                steady = sorted(r.steady for r in results[:args.repeat])
                print(f"batched steady samples/s over {args.repeat} runs: median {statistics.median(steady):,.0f} "
                      f"(min {steady[0]:,.0f}, max {steady[-1]:,.0f}); median ratio to floor "
                      f"{statistics.median(r.rate for r in results[:args.repeat]) / floor.rate:.2f}")
            for r in results:
                if r.verdict and r.verdict.examples:
                    print(r.name, *r.verdict.examples, sep="\n  ")
            if not all(r.verdict and r.verdict.ok for r in results):
                raise SystemExit(1)
        finally:
            broker.terminate()
            broker.wait(timeout=10)


if __name__ == "__main__":
    main()
