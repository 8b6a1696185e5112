"""Sources with clocks ahead, as the worker counts them and the dashboard lists them: a bounded label set
(the top sources only) and read across processes (the worker writes, the dashboard reads)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from watchkeeper.agents.window_step import WindowStep
from watchkeeper.agents.worker_metrics import future_by_source
from watchkeeper.plumbing import self_metrics

NOW = 1_800_000_000.0


def _ahead(source: str, n: int) -> bytes:
    return orjson.dumps({"v": 1, "source": source, "series": [
        {"name": "cpu", "labels": {"host": source}, "ts": [NOW + 3600 + i for i in range(n)], "values": [1.0] * n}]})


def test_future_counts_by_source_top_n_across_partitions() -> None:
    step = WindowStep("t", 10.0, 5.0)
    step.process_many(0, [(i, f"h{i}".encode(), _ahead(f"h{i}", i + 1)) for i in range(5)], NOW)
    step.process_many(1, [(0, b"h0", _ahead("h0", 10))], NOW)
    n, top = future_by_source(step.engines, top=3)
    assert n == 5
    assert top == {"h0": 11, "h4": 5, "h3": 4}  # h0: 1 on partition 0 + 10 on partition 1


_CHILD = """
import sys
from watchkeeper.plumbing import self_metrics as m
m.SOURCE_FUTURE_SAMPLES.labels(sys.argv[1]).set(int(sys.argv[2]))
m.SOURCE_FUTURE_SAMPLES.labels("fixed-host").set(0)
"""


def test_dashboard_reads_the_skewed_sources_the_worker_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = self_metrics.prepare_multiproc_dir(tmp_path / "metrics")
    env = {**os.environ, self_metrics.MULTIPROC_ENV: str(directory), "PYTHONPATH": str(Path.cwd())}
    for host, n in (("db-1", 40), ("web-7", 900)):
        subprocess.run([sys.executable, "-c", _CHILD, host, str(n)], env=env, check=True, timeout=60)
    monkeypatch.setenv(self_metrics.MULTIPROC_ENV, str(directory))
    assert self_metrics.skewed_sources() == [("web-7", 900.0), ("db-1", 40.0)]  # a 0 (fixed) is not listed
