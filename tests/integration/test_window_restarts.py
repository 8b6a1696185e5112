"""Given 1M samples on wk.samples and a worker killed with SIGKILL (or stopped with SIGTERM) three times at
random points (restarted each time), expect every window on wk.aggregates exactly once, with exact counts
and max, mean to 1e-9 and p95 within 1 %: state resumes from the snapshot table, replayed windows are not sent twice."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from bench.windows.kafka_load import load, read_all
from bench.windows.verify import expected_windows, verify
from bench.windows.workload import PARTITIONS, Workload
from tests.conftest import write_config
from watchkeeper.plumbing.config import Config

SAMPLES = 1_000_000
KILLS = 3


def start_worker(cfg_path: Path, log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")  # noqa: SIM115 (the child owns it)
    cmd = [sys.executable, "-m", "watchkeeper", "worker", "--loglevel", "info", "--config", str(cfg_path)]
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)


async def kill_at(bootstrap: str, topic: str, thresholds: list[int], cfg_path: Path, log: Path,
                  expected: int, timeout: float = 400.0, sig: int = signal.SIGKILL) -> tuple[int, list[int]]:
    """Run the worker; stop it with `sig` when the aggregates topic passes each threshold and start it again.
    Returns the number of kills and the record counts they happened at, once `expected` records exist."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
    proc = start_worker(cfg_path, log)
    seen, killed_at = 0, []
    deadline = time.monotonic() + timeout
    try:
        while seen < expected and time.monotonic() < deadline:
            for recs in (await consumer.getmany(timeout_ms=100, max_records=50_000)).values():
                seen += len(recs)
            # A kill needs new output since the last restart, so no two kills land on the same moment.
            if thresholds and seen >= thresholds[0] and (not killed_at or seen > killed_at[-1]):
                proc.send_signal(sig)
                proc.wait()
                killed_at.append(seen)
                thresholds.pop(0)
                proc = start_worker(cfg_path, log)
            assert proc.poll() is None, log.read_text()[-3000:]
        assert seen >= expected, f"only {seen} of {expected} windows after {timeout:.0f} s (stops at {killed_at})"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        await consumer.stop()
    return len(killed_at), killed_at


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_stopped_three_times_every_window_exactly_once(wk_config: Config, tmp_path: Path, sig: int) -> None:
    wl = Workload(samples=SAMPLES)
    cfg = wk_config
    cfg.windows.snapshot_every_messages = 20
    cfg.windows.snapshot_every_seconds = 0.25
    t = cfg.kafka.topics
    messages = wl.batched()
    asyncio.run(load(cfg.kafka.bootstrap, t.samples, messages))
    raw = asyncio.run(read_all(cfg.kafka.bootstrap, t.samples, PARTITIONS,
                               expected=sum(len(m) for m in messages.values())))
    exp = expected_windows([r.value for r in raw])
    assert len(exp) == wl.expected_windows == 100_000

    rng = random.Random()
    thresholds = sorted(rng.sample(range(5_000, 90_000), KILLS))
    cfg_path = write_config(cfg, tmp_path / "watchkeeper.yaml")
    log = tmp_path / "worker.log"
    kills, at = asyncio.run(kill_at(cfg.kafka.bootstrap, t.aggregates, list(thresholds), cfg_path, log,
                                    expected=len(exp), sig=sig))
    assert kills == KILLS, f"killed {kills} times at {at} of thresholds {thresholds}"

    aggs = asyncio.run(read_all(cfg.kafka.bootstrap, t.aggregates, PARTITIONS, idle=3.0))
    verdict = verify(exp, [r.value for r in aggs])
    assert verdict.duplicates == 0, f"kills at {at}: {verdict}"
    assert verdict.missing == 0 and verdict.unexpected == 0 and verdict.wrong == 0, f"kills at {at}: {verdict}"
    assert verdict.verified == len(exp)
