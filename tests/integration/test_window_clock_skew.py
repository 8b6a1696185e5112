"""Given 40 sources on 8 partitions (5 per partition), one per partition with its clock an hour ahead and
one normal source that first sends a sample a year ahead, and the worker killed with SIGKILL twice (and
restarted), expect every window of the 32 normal sources exactly once (exact counts and max), none of
the skewed ones, all their samples dead-lettered with the reason `future` under their source, and each
source's last window closed by processing time once the input stops (idle_timeout)."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path

import orjson
import pytest

from bench.windows.kafka_load import load, read_all
from bench.windows.verify import expected_windows, refused_by_source, verify
from bench.windows.workload import MARKER, PARTITIONS, Workload
from tests.conftest import write_config
from tests.integration.test_window_restarts import kill_at
from watchkeeper.plumbing.config import Config

SAMPLES = 200_000
SKEWED = tuple(range(32, 40))  # source p + 32 is on partition p: one skewed source per partition
FAR_FUTURE = 1


@pytest.mark.slow
def test_skewed_sources_are_refused_and_the_others_lose_nothing_across_kills(wk_config: Config,
                                                                           tmp_path: Path) -> None:
    seconds = SAMPLES // Workload().series
    wl = Workload(samples=SAMPLES, t0=float((int(time.time()) - seconds - 120) // 10 * 10), skewed=SKEWED,
                  far_future=FAR_FUTURE)
    cfg = wk_config
    cfg.windows.snapshot_every_messages = 20
    cfg.windows.snapshot_every_seconds = 0.25
    cfg.windows.idle_timeout = 5.0
    t = cfg.kafka.topics
    messages = wl.batched()
    asyncio.run(load(cfg.kafka.bootstrap, t.samples, messages))
    values = [v for msgs in messages.values() for _, v in msgs]
    exp = expected_windows(values, sources=wl.expected_sources, until=wl.t0 + wl.seconds + 60)
    assert len(exp) == 32 * wl.series_per_source * seconds // 10
    normal_markers = len(wl.expected_sources)  # each normal source's marker window, closed as idle

    thresholds = sorted(random.Random().sample(range(1_000, len(exp) - 2_000), 2))
    cfg_path = write_config(cfg, tmp_path / "watchkeeper.yaml")
    kills, at = asyncio.run(kill_at(cfg.kafka.bootstrap, t.aggregates, list(thresholds), cfg_path,
                                    tmp_path / "worker.log", expected=len(exp) + normal_markers,
                                    timeout=300.0, sig=signal.SIGKILL))
    assert kills == 2, f"killed {kills} times at {at}"

    aggs = [r.value for r in asyncio.run(read_all(cfg.kafka.bootstrap, t.aggregates, PARTITIONS, idle=3.0))]
    verdict = verify(exp, aggs)
    assert verdict.ok and verdict.verified == len(exp), f"kills at {at}: {verdict}"
    markers = [orjson.loads(v) for v in aggs if orjson.loads(v)["name"] == MARKER]
    assert sorted(m["labels"]["host"] for m in markers) == sorted(wl.expected_sources)  # once each

    dead = asyncio.run(read_all(cfg.kafka.bootstrap, t.deadletter, 1, idle=3.0))
    refused = refused_by_source([r.value for r in dead])
    per_skewed = wl.samples // wl.sources + 1  # its data and its marker
    # At least once: a replay after a kill dead-letters again what the snapshot did not cover.
    assert {key for key in refused} == {("future", f"host-{s}") for s in (*SKEWED, FAR_FUTURE)}, refused
    assert all(refused[("future", f"host-{s}")] >= per_skewed for s in SKEWED), refused
    assert refused[("future", f"host-{FAR_FUTURE}")] >= 1
