"""Series churn soak for the window worker (issue 17): N active series, a share of them replaced by new
series every minute, for M minutes, and the worker's resident memory printed every minute.

    PYTHONPATH=. nice -n 10 python -m bench.windows.churn --series 200000 --churn 0.1 --minutes 30

Why: a worker that never forgets a series grows with every series ever seen (a pod or a container id in
a label makes a new series each deploy); the bound is that idle series are evicted (`series_idle_seconds`)
and their registry entries released, so the memory of a worker with a steady number of *active* series is
flat however many series came and went.

What it does: starts a tansu broker and the real worker (`bench.windows.worker`, window agent only), then
feeds, every `--every` seconds of wall time, one sample per active series (batched, 500 series a
message, 40 sources over the 8 partitions, event time = now, every 10th series a counter). At each minute
a random `--churn` share of the series is replaced by new ones (a new label value: the old series never
sends again). Each minute prints the worker's VmRSS (read from /proc/<pid>/status by this process), the
series its registry holds and the samples it took; the end prints first/last/max RSS and the slope
(least squares, MiB per minute) over the whole run and over its second half.

Not a timed benchmark: it measures memory, so CPU noise does not matter (run it under `nice`). The
windows are wider than the default (`--width`, 120 s) and the series idle time shorter
(`--series-idle`, 300 s; the default is 1 h) so that the run reaches its steady state within 30 minutes
and the in-memory broker does not hold an aggregate per series every 10 s.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import yaml
from aiokafka import AIOKafkaProducer

from bench.windows.peak_rss import current_rss
from bench.windows.run import ROOT, env, make_config
from bench.windows.workload import PARTITIONS
from watchkeeper.plumbing.broker import free_port, start_broker

SOURCES = 40
PER_MESSAGE = 500  # series per message


@dataclass(frozen=True)
class Soak:
    series: int = 200_000
    churn: float = 0.1
    minutes: int = 30
    every: float = 30.0  # seconds between two samples of a series
    width: float = 120.0
    series_idle: float = 300.0
    seed: int = 17


def messages(gen: np.ndarray, t: float, round_no: int) -> list[tuple[int, bytes, bytes]]:
    """One sample per series at event time `t`: (partition, key, value) per message. Series i is named by
    its index and generation, so bumping gen[i] replaces it by a new series."""
    n = len(gen)
    out = []
    per_source = -(-n // SOURCES)
    gens = gen.tolist()
    for src in range(SOURCES):
        key = f"churn-{src}".encode()
        lo, hi = src * per_source, min(n, (src + 1) * per_source)
        for a in range(lo, hi, PER_MESSAGE):
            blocks = []
            for i in range(a, min(hi, a + PER_MESSAGE)):
                counter = i % 10 == 0
                blocks.append({"name": "churn_requests_total" if counter else "churn_value",
                               "labels": {"series": f"{i}.{gens[i]}"}, "kind": "counter" if counter else "gauge",
                               "ts": [t], "values": [float(round_no if counter else i % 97)]})
            out.append((src % PARTITIONS, key, orjson.dumps(
                {"v": 1, "source": key.decode(), "labels": {"host": key.decode()}, "series": blocks})))
    return out


def stats_line(path: Path) -> list[float]:
    if not path.exists():
        return []
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    return [float(x) for x in lines[-1].split()] if lines else []


def slope(ys: list[float]) -> float:
    """Least-squares slope per step of `ys` (0 for fewer than 2 points)."""
    if len(ys) < 2:
        return 0.0
    x = np.arange(len(ys), dtype=float)
    return float(np.polyfit(x, np.asarray(ys), 1)[0])


async def feed(soak: Soak, bootstrap: str, topic: str, worker: subprocess.Popen[bytes], stats: Path) -> list[float]:
    rng = np.random.default_rng(soak.seed)
    gen = np.zeros(soak.series, dtype=np.int64)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=8_000_000, linger_ms=20,
                                max_batch_size=1_000_000)
    await producer.start()
    rss: list[float] = []
    created = soak.series
    print("| minute | worker RSS MiB | series in registry | series created so far | samples taken |", flush=True)
    print("|---:|---:|---:|---:|---:|", flush=True)
    try:
        start = time.time()
        next_round, next_minute, round_no, minute = start, start + 60.0, 0, 0
        while minute < soak.minutes:
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited with {worker.returncode}")
            now = time.time()
            if now >= next_minute:
                minute += 1
                next_minute += 60.0
                line = stats_line(stats)
                mib = current_rss(worker.pid) / 2**20
                rss.append(mib)
                held = int(line[6]) if len(line) > 6 else -1
                took = int(line[1]) if line else 0
                print(f"| {minute} | {mib:,.1f} | {held:,} | {created:,} | {took:,} |", flush=True)
                k = int(soak.churn * soak.series)
                gen[rng.choice(soak.series, size=k, replace=False)] += 1
                created += k
            if now >= next_round:
                sends = [await producer.send(topic, value, key=key, partition=p)
                         for p, key, value in messages(gen, round(now, 3), round_no)]
                await asyncio.gather(*sends)
                round_no += 1
                next_round += soak.every
            await asyncio.sleep(max(0.05, min(next_round, next_minute) - time.time()))
    finally:
        await producer.stop()
    return rss


def run(soak: Soak) -> int:
    with tempfile.TemporaryDirectory(prefix="wk-soak-") as d:
        tmp = Path(d)
        port = free_port()
        broker = start_broker("127.0.0.1", port, log_path=tmp / "tansu.log")
        try:
            cfg = make_config(f"127.0.0.1:{port}", tmp)
            cfg.windows.width = soak.width
            cfg.windows.series_idle_seconds = soak.series_idle
            cfg_path = tmp / "soak.yaml"
            cfg_path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
            stats = tmp / "soak.stats"
            log = open(tmp / "worker.log", "wb")  # noqa: SIM115
            worker = subprocess.Popen([sys.executable, "-m", "bench.windows.worker", str(cfg_path), str(stats)],
                                      stdout=log, stderr=subprocess.STDOUT, env=env(), cwd=ROOT)
            print(f"soak: {soak.series:,} series, {soak.churn:.0%} replaced every minute, {soak.minutes} min, a "
                  f"sample per series every {soak.every:g} s, windows {soak.width:g} s, series_idle "
                  f"{soak.series_idle:g} s; worker pid {worker.pid}", flush=True)
            try:
                rss = asyncio.run(feed(soak, cfg.kafka.bootstrap, cfg.kafka.topics.samples, worker, stats))
            except SystemExit:
                log.flush()
                print((tmp / "worker.log").read_text()[:6000], file=sys.stderr)
                raise
            finally:
                worker.terminate()
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                log.close()
        finally:
            broker.terminate()
            broker.wait(timeout=10)
    half = rss[len(rss) // 2:]
    print(f"worker RSS MiB: first {rss[0]:,.1f}, last {rss[-1]:,.1f}, max {max(rss):,.1f}, median "
          f"{statistics.median(rss):,.1f}; slope {slope(rss):+.2f} MiB/min over the run, "
          f"{slope(half):+.2f} MiB/min over its second half (minutes {len(rss) - len(half) + 1}-{len(rss)})",
          flush=True)
    return 0
