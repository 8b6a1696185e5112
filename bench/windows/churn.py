"""Membership churn for the window agent: bursty input, four workers of one consumer group joining and
leaving (SIGTERM, SIGKILL), then every window checked (exactly once, exact counts). Not a timed test: it
takes a minute or two, and it is how the revocation race fixed in `agents/window_agent.py` was shown.

With `--series N` it runs the series churn soak instead (`bench/windows/series_churn.py`: N active series,
`--churn` of them replaced every minute, for `--minutes`, the worker's RSS printed every minute):

    PYTHONPATH=. nice -n 10 python -m bench.windows.churn --series 200000 --churn 0.1 --minutes 30

    PYTHONPATH=. python -m bench.windows.churn --samples 600000 --slow-emit

`--slow-emit` makes each worker's producer pause 0.3 s after taking a batch of windows (as when its buffer
is full), so revocations are likelier to land while a batch is being emitted. Measured here (2 cores):
the code before the fix with a 0.3 s pause written into emit (before its bookkeeping) and checkpoint
(after its wait) lost 1,500 windows in 1 of 2 runs (a partition revoked mid-emit was put back into
`emitted`, so after its re-assignment it was never resumed); with --slow-emit alone, 0 of 2 runs failed.
After the fix: no failure in 5 runs (2 with the pauses written in, 1 with --slow-emit, 2 without pauses).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from bench.windows.kafka_load import load, read_all
from bench.windows.verify import Verdict, expected_windows, verify
from bench.windows.workload import PARTITIONS, Workload
from watchkeeper.plumbing.broker import free_port, start_broker
from watchkeeper.plumbing.config import Config
from watchkeeper.plumbing.topics import ensure_topics, topic_plan

SLOW_EMIT = """
import asyncio, sys
from aiokafka import AIOKafkaProducer
from watchkeeper.cli import main
send_batch = AIOKafkaProducer.send_batch
async def slow_send_batch(self, *args, **kwargs):
    sent = await send_batch(self, *args, **kwargs)
    await asyncio.sleep(0.3)
    return sent
AIOKafkaProducer.send_batch = slow_send_batch
sys.exit(main(sys.argv[1:]))
"""
# (share of the expected output, action, worker)
PLAN = [(0.08, "start", "b"), (0.2, "start", "c"), (0.35, "term", "b"), (0.5, "start", "d"),
        (0.6, "kill", "a"), (0.75, "term", "c")]
SLICES, SLICE_EVERY = 12, 4.0


def start(cfg_path: Path, log: Path, slow: bool) -> subprocess.Popen[bytes]:
    run = ["-c", SLOW_EMIT] if slow else ["-m", "watchkeeper"]
    cmd = [sys.executable, *run, "worker", "--loglevel", "info", "--config", str(cfg_path)]
    return subprocess.Popen(cmd, stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def churn(cfg: Config, cfg_path: Path, messages: dict[int, list[tuple[bytes, bytes]]], expected: int,
                logs: Path, slow: bool, timeout: float) -> list[tuple[float, int, str]]:
    t = cfg.kafka.topics

    async def feed() -> None:
        for i in range(SLICES):
            await load(cfg.kafka.bootstrap, t.samples,
                       {p: m[len(m) * i // SLICES:len(m) * (i + 1) // SLICES] for p, m in messages.items()})
            await asyncio.sleep(SLICE_EVERY)

    consumer = AIOKafkaConsumer(bootstrap_servers=cfg.kafka.bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    consumer.assign([TopicPartition(t.aggregates, p) for p in range(PARTITIONS)])
    feeding = asyncio.create_task(feed())
    procs = {"a": start(cfg_path, logs / "a.log", slow)}
    plan, events, seen, t0 = list(PLAN), [], 0, time.monotonic()
    try:
        while seen < expected and time.monotonic() - t0 < timeout:
            for recs in (await consumer.getmany(timeout_ms=100)).values():
                seen += len(recs)
            if plan and seen >= plan[0][0] * expected:
                _, action, name = plan.pop(0)
                if action == "start":
                    procs[name] = start(cfg_path, logs / f"{name}.log", slow)
                else:
                    stop(procs[name], signal.SIGTERM if action == "term" else signal.SIGKILL)
                events.append((round(time.monotonic() - t0, 1), seen, f"{action} {name}"))
    finally:
        feeding.cancel()
        for proc in procs.values():
            stop(proc)
        await consumer.stop()
    return events


def run(samples: int, slow: bool, timeout: float, workdir: Path) -> Verdict:
    port = free_port()
    broker = start_broker("127.0.0.1", port, log_path=workdir / "tansu.log")
    try:
        cfg = Config(data_dir=str(workdir / "data"))
        cfg.kafka.bootstrap = f"127.0.0.1:{port}"
        cfg.kafka.session_timeout = 6.0
        cfg.worker.app_id = "wk-churn"
        cfg.windows.snapshot_every_messages = 20
        cfg.windows.snapshot_every_seconds = 0.25
        asyncio.run(ensure_topics(cfg.kafka.bootstrap, topic_plan(cfg.kafka.topics)))
        import yaml

        cfg_path = workdir / "watchkeeper.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        messages = Workload(samples=samples).batched()
        exp = expected_windows([value for msgs in messages.values() for _, value in msgs])
        events = asyncio.run(churn(cfg, cfg_path, messages, len(exp), workdir, slow, timeout))
        print("events (seconds, windows seen, action):", events)
        aggs = asyncio.run(read_all(cfg.kafka.bootstrap, cfg.kafka.topics.aggregates, PARTITIONS, idle=3.0))
        return verify(exp, [r.value for r in aggs])
    finally:
        broker.terminate()
        broker.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=600_000)
    ap.add_argument("--slow-emit", action="store_true", help="each worker's producer pauses after a batch")
    ap.add_argument("--timeout", type=float, default=240.0)
    ap.add_argument("--workdir", help="keep the logs here (default: a temporary directory)")
    soak = ap.add_argument_group("series churn soak (bench/windows/series_churn.py): given --series, runs it instead")
    soak.add_argument("--series", type=int, help="active series (e.g. 200000)")
    soak.add_argument("--churn", type=float, default=0.1, help="share of the series replaced every minute")
    soak.add_argument("--minutes", type=int, default=30)
    soak.add_argument("--every", type=float, default=30.0, help="seconds between two samples of a series")
    soak.add_argument("--width", type=float, default=120.0, help="window width (seconds)")
    soak.add_argument("--series-idle", type=float, default=300.0, help="windows.series_idle_seconds")
    args = ap.parse_args()
    if args.series:
        from bench.windows.series_churn import Soak
        from bench.windows.series_churn import run as soak_run

        return soak_run(Soak(args.series, args.churn, args.minutes, args.every, args.width, args.series_idle))
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        verdict = run(args.samples, args.slow_emit, args.timeout, workdir)
    print(verdict)
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
