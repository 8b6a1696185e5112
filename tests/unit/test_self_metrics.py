"""Self-metrics: the worker's pure pieces (window latency, partition lag) and the multiprocess exposition that
lets the dashboard show counters incremented in other processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from watchkeeper.agents.worker_metrics import partition_lags, window_latency
from watchkeeper.plumbing import self_metrics
from watchkeeper.supervisor import Component, Supervisor


def _agg(end: float) -> tuple[bytes, bytes]:
    return b"k", orjson.dumps({"series_id": "00", "start": end - 10, "end": end, "count": 1})


def test_window_latency_from_the_oldest_of_first_and_last() -> None:
    assert window_latency([], 100.0) is None
    assert window_latency([_agg(90.0)], 100.0) == 10.0
    assert window_latency([_agg(80.0), _agg(90.0), _agg(90.0)], 100.0) == 20.0
    assert window_latency([_agg(90.0), _agg(70.0)], 100.0) == 30.0


def test_partition_lags() -> None:
    # partition 0: high watermark 10, next offset to apply 4 -> 6 behind; 1: caught up; 2: no fetch yet;
    # 3: not restored yet (no progress): unknown; 4: empty and not restored: 0
    assert partition_lags({0: 4, 1: 7, 2: 0}, {0: 10, 1: 7, 2: None, 3: 5, 4: 0}) == {0: 6, 1: 0, 4: 0}
    assert partition_lags({0: 12}, {0: 10}) == {0: 0}  # never negative


_CHILD = """
import os, sys
from watchkeeper.plumbing import self_metrics as m
m.SAMPLES_CONSUMED.labels("samples").inc(int(sys.argv[1]))
m.SINK_ROWS.labels("clickhouse", "aggregates").inc(7)
m.CONSUMER_LAG.labels("samples", sys.argv[2]).set(int(sys.argv[1]))
m.WINDOW_LATENCY.observe(3.0)
print(os.getpid())
"""


def _values(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_exposition_sums_every_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = self_metrics.prepare_multiproc_dir(tmp_path / "metrics")
    env = {**os.environ, self_metrics.MULTIPROC_ENV: str(directory), "PYTHONPATH": str(Path.cwd())}
    pids = [int(subprocess.run([sys.executable, "-c", _CHILD, str(n), str(p)], env=env, check=True, timeout=60,
                               capture_output=True, text=True).stdout) for n, p in ((5, "0"), (11, "1"))]
    monkeypatch.setenv(self_metrics.MULTIPROC_ENV, str(directory))
    v = _values(self_metrics.exposition())
    assert v[("watchkeeper_samples_consumed_total", (("topic", "samples"),))] == 16
    assert v[("watchkeeper_sink_rows_total", (("sink", "clickhouse"), ("table", "aggregates")))] == 14
    assert v[("watchkeeper_window_close_latency_seconds_count", ())] == 2
    assert v[("watchkeeper_consumer_lag_messages", (("partition", "0"), ("topic", "samples")))] == 5
    # a dead process's live gauge goes, its counters stay
    self_metrics.mark_dead(pids[0], directory)
    v = _values(self_metrics.exposition())
    assert ("watchkeeper_consumer_lag_messages", (("partition", "0"), ("topic", "samples"))) not in v
    assert v[("watchkeeper_consumer_lag_messages", (("partition", "1"), ("topic", "samples")))] == 11
    assert v[("watchkeeper_samples_consumed_total", (("topic", "samples"),))] == 16
    # a new run starts from nothing
    self_metrics.prepare_multiproc_dir(directory)
    assert ("watchkeeper_samples_consumed_total", (("topic", "samples"),)) not in _values(self_metrics.exposition())


def test_exposition_without_the_directory_is_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(self_metrics.MULTIPROC_ENV, raising=False)
    self_metrics.NOTIFICATION_ERRORS.labels("ops", "webhook").inc()
    v = _values(self_metrics.exposition())
    assert v[("watchkeeper_notification_errors_total", (("integration", "webhook"), ("receiver", "ops")))] >= 1


def test_supervisor_drops_a_dead_childs_live_gauges(tmp_path: Path) -> None:
    directory = self_metrics.prepare_multiproc_dir(tmp_path / "metrics")
    env = {**os.environ, self_metrics.MULTIPROC_ENV: str(directory), "PYTHONPATH": str(Path.cwd())}
    sup = Supervisor(metrics_dir=directory, max_restarts=0)
    child = sup.add(Component("child", [sys.executable, "-c", _CHILD, "3", "0"], tmp_path / "child.log", env=env))
    assert child.proc is not None
    pid = child.proc.pid
    assert child.proc.wait(timeout=60) == 0
    assert (directory / f"gauge_livesum_{pid}.db").exists()
    notes = sup.check()
    assert notes and "giving up" in notes[0]
    assert not (directory / f"gauge_livesum_{pid}.db").exists()
    assert (directory / f"counter_{pid}.db").exists()  # its counts stay in the totals
