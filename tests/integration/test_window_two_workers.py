"""Given 400k samples arriving on wk.samples over ~45 s and two workers with the same config (same Faust
app id, so the same consumer group), worker B started while A is emitting (partitions move from A to B)
and A then stopped with SIGKILL or SIGTERM (its partitions move back to B), expect every window on
wk.aggregates exactly once with exact counts: a revoked partition's old owner sends nothing the new
owner sends again, and the new owner misses nothing the old owner had not sent. One source per partition
runs its clock an hour ahead: its samples are dead-lettered `future` and its partition's other sources lose
nothing (watermarks are per source)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from bench.windows.churn import stop
from bench.windows.kafka_load import load, read_all
from bench.windows.verify import expected_windows, refused_by_source, verify
from bench.windows.workload import PARTITIONS, Workload
from tests.conftest import write_config
from watchkeeper.plumbing.config import Config

SAMPLES = 400_000
SLICES = 30  # the input arrives in this many slices (every partition's next part each time)
SLICE_EVERY = 1.5  # seconds
RESUMED = "resumed from the snapshot"
SKEWED = tuple(range(32, 40))  # source p + 32 is on partition p: one an hour ahead per partition


def start_worker(cfg_path: Path, log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")  # noqa: SIM115 (the child owns it)
    cmd = [sys.executable, "-m", "watchkeeper", "worker", "--loglevel", "info", "--config", str(cfg_path)]
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)


async def feed(bootstrap: str, topic: str, messages: dict[int, list[tuple[bytes, bytes]]]) -> None:
    """The input as a live stream: every SLICE_EVERY seconds, the next 1/SLICES of every partition."""
    for i in range(SLICES):
        part = {p: msgs[len(msgs) * i // SLICES:len(msgs) * (i + 1) // SLICES] for p, msgs in messages.items()}
        await load(bootstrap, topic, part)
        await asyncio.sleep(SLICE_EVERY)


async def run_two(bootstrap: str, topics: tuple[str, str], messages: dict[int, list[tuple[bytes, bytes]]],
                  cfg_path: Path, logs: tuple[Path, Path], expected: int, sig: int,
                  timeout: float = 150.0) -> dict[str, int]:
    """Feed the input meanwhile. Start A; at 10 % of the output start B; once both have resumed their
    share after B joined (they log it) and more output came, stop A with `sig`. Returns the output counts
    at each step, once `expected` records exist."""
    samples, aggregates = topics
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    consumer.assign([TopicPartition(aggregates, p) for p in range(PARTITIONS)])
    feeding = asyncio.create_task(feed(bootstrap, samples, messages))
    log_a, log_b = logs
    a = start_worker(cfg_path, log_a)
    b: subprocess.Popen[bytes] | None = None
    seen, at = 0, dict[str, int]()
    deadline = time.monotonic() + timeout
    try:
        while seen < expected and time.monotonic() < deadline:
            for recs in (await consumer.getmany(timeout_ms=100, max_records=50_000)).values():
                seen += len(recs)
            if b is None and seen >= expected // 10:
                at["b_started"] = seen
                b = start_worker(cfg_path, log_b)
            elif (b is not None and "a_stopped" not in at and RESUMED in log_b.read_text()
                  and log_a.read_text().count(RESUMED) > PARTITIONS  # A resumed its share after B joined
                  and seen >= at["b_started"] + expected // 10):
                at["a_stopped"] = seen
                stop(a, sig)
            if "a_stopped" not in at:
                assert a.poll() is None, log_a.read_text()[-3000:]
            if b is not None:
                assert b.poll() is None, log_b.read_text()[-3000:]
            if feeding.done():
                feeding.result()  # raises what the feed raised
        assert seen >= expected, f"only {seen} of {expected} windows after {timeout:.0f} s ({at})"
    finally:
        feeding.cancel()
        stop(a)
        if b is not None:
            stop(b)
        await consumer.stop()
    return at


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_two_workers_rebalancing_every_window_exactly_once(wk_config: Config, tmp_path: Path,
                                                           sig: int) -> None:
    seconds = SAMPLES // Workload().series
    wl = Workload(samples=SAMPLES, t0=float((int(time.time()) - seconds - 120) // 10 * 10), skewed=SKEWED)
    cfg = wk_config
    cfg.windows.snapshot_every_messages = 20
    cfg.windows.snapshot_every_seconds = 0.25
    t = cfg.kafka.topics
    messages = wl.batched()
    exp = expected_windows([value for msgs in messages.values() for _, value in msgs], sources=wl.expected_sources)
    assert len(exp) == wl.expected_windows * 32 // 40 == 32_000

    cfg_path = write_config(cfg, tmp_path / "watchkeeper.yaml")
    logs = (tmp_path / "worker-a.log", tmp_path / "worker-b.log")
    at = asyncio.run(run_two(cfg.kafka.bootstrap, (t.samples, t.aggregates), messages, cfg_path, logs,
                             expected=len(exp), sig=sig))
    assert set(at) == {"b_started", "a_stopped"}, at
    # Both took part: B resumed partitions A had worked on, and after A stopped, B resumed A's.
    b_log = logs[1].read_text()
    assert b_log.count(RESUMED) > PARTITIONS // 2, b_log[-3000:]

    aggs = asyncio.run(read_all(cfg.kafka.bootstrap, t.aggregates, PARTITIONS, idle=3.0))
    verdict = verify(exp, [r.value for r in aggs])
    assert verdict.duplicates == 0, f"{at}: {verdict}"
    assert verdict.missing == 0 and verdict.unexpected == 0 and verdict.wrong == 0, f"{at}: {verdict}"
    assert verdict.verified == len(exp)
    dead = asyncio.run(read_all(cfg.kafka.bootstrap, t.deadletter, 1, idle=3.0))
    refused = refused_by_source([r.value for r in dead])
    assert set(refused) == {("future", f"host-{s}") for s in SKEWED}, refused
    assert all(n >= wl.samples // wl.sources + 1 for n in refused.values()), refused  # at least once
