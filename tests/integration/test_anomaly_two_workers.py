"""Given a level shift on 8 series of wk.aggregates, one per partition, arriving over ~20 s, and two
workers with the same config (one consumer group): worker B started while A scores (partitions move from
A to B), then A killed with SIGKILL (its partitions move to B without a release). Expect on wk.alerts
exactly the pure core's transitions for every series, each once: a moved partition's new owner resumes
from its checkpoint, replays, and sends none of what the old owner sent (`wk-seq` in the stream
`anomaly/aggregates`), and misses none of what it had not."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from tests.integration.kafka_io import consume_until
from tests.integration.test_anomaly_agent import (
    N,
    aggregate,
    anomaly_config,
    expected,
    level_shift,
    produce_all,
    start_worker,
    stop_worker,
)
from watchkeeper.plumbing.config import Config
from watchkeeper.schemas import AlertEvent, decode, format_series_id, series_id

PARTITIONS = 8
SLICES = 20
RESUMED = "resumed from the snapshot"


def wait_for(log: Path, text: str, timeout: float = 90.0) -> None:
    """Until the worker's log says `text` (a rebalance takes a few session timeouts)."""
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"no {text!r} in {log.name} within {timeout:.0f} s"
        time.sleep(0.5)


def messages(p: int, first: int, stop: int) -> list[tuple[bytes, bytes]]:
    labels = {"job": "api", "instance": f"web-{p}"}
    key = format_series_id(series_id("latency", labels)).encode()
    x = level_shift()
    return [(key, aggregate(labels, i, float(x[i]))) for i in range(first, stop)]


async def feed(bootstrap: str, topic: str, k: int) -> None:
    """Slice k of every partition's input."""
    first, stop = 1 + (N - 1) * k // SLICES, 1 + (N - 1) * (k + 1) // SLICES
    await asyncio.gather(*(produce_all(bootstrap, topic, messages(p, first, stop), p) for p in range(PARTITIONS)))


def test_a_worker_joining_and_one_killed_every_transition_exactly_once(wk_config: Config, tmp_path: Path) -> None:
    cfg = anomaly_config(wk_config, tmp_path)
    cfg.anomaly.checkpoint_messages = 300
    t = cfg.kafka.topics
    want: Counter[tuple[str, str, float]] = Counter(
        (f"web-{p}", state, at) for p in range(PARTITIONS)
        for _, state, at in expected("LatencyShift", {"job": "api", "instance": f"web-{p}"}, first=1))
    assert sum(want.values()) == 3 * PARTITIONS
    a = start_worker(cfg, tmp_path, "a")
    b: subprocess.Popen[bytes] | None = None
    try:
        for k in range(SLICES):
            asyncio.run(feed(cfg.kafka.bootstrap, t.aggregates, k))
            if k == 4:
                b = start_worker(cfg, tmp_path, "b")  # the group rebalances: some partitions move to B
            if k == 12:
                wait_for(tmp_path / "b.log", RESUMED)  # B has its share (A released it first)
                a.send_signal(signal.SIGKILL)  # its partitions move to B unreleased
                a.wait()
            time.sleep(1.0)
        assert b is not None and b.poll() is None, (tmp_path / "b.log").read_text()[-3000:]
        asyncio.run(consume_until(cfg.kafka.bootstrap, t.alerts, lambda r: len(r) >= len(want), timeout=180))
        # Everything on the topic a few seconds later: anything sent twice would be there by now.
        records = asyncio.run(consume_until(cfg.kafka.bootstrap, t.alerts, lambda r: False, timeout=5))
    finally:
        stop_worker(a)
        if b is not None:
            stop_worker(b)
    events = [decode(r.value, AlertEvent) for r in records]
    got: Counter[tuple[str, str, float]] = Counter((e.labels["instance"], e.state, e.event_time) for e in events)
    assert got == want, ((tmp_path / "b.log").read_text()[-3000:], got - want, want - got)
    moved = (tmp_path / "b.log").read_text(errors="replace").count(RESUMED)
    assert moved > PARTITIONS, f"B resumed {moved} partitions: none moved to it before A was killed"
