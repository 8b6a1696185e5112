"""`watchkeeper anomaly check` and the worker refuse a broken anomaly rule file the same way: the error
names file, line, group and rule; the worker stops with exit code 2 before it touches Kafka."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

GOOD = """anomaly:
  - name: latency
    rules:
      - alert: LatencyAnomaly
        selector: 'http_request_duration_seconds{job="api"}'
        field: p95
        threshold: 0.99
        for: 2m
"""


def wk(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "watchkeeper", *args], text=True, capture_output=True, env=ENV,
                          cwd=cwd, timeout=120)


def test_check_says_which_files_are_good_and_which_are_not(tmp_path: Path) -> None:
    (tmp_path / "good.yml").write_text(GOOD)
    (tmp_path / "bad.yml").write_text(GOOD.replace("field: p95", "field: p97"))
    res = wk("anomaly", "check", "good.yml", "bad.yml", cwd=tmp_path)
    assert res.returncode == 1
    assert "Checking good.yml\n  SUCCESS: 1 anomaly rules found" in res.stdout
    assert "bad.yml:6: anomaly.0.rules.0.field: group 'latency', rule 'LatencyAnomaly': unknown field 'p97'" \
        in res.stdout
    assert wk("anomaly", "check", "good.yml", cwd=tmp_path).returncode == 0


def test_the_worker_stops_on_a_broken_anomaly_file_with_exit_code_2(tmp_path: Path) -> None:
    (tmp_path / "anomaly.yml").write_text(GOOD.replace("threshold: 0.99", "threshold: 99"))
    (tmp_path / "watchkeeper.yaml").write_text("kafka: {bootstrap: '127.0.0.1:1'}\nanomaly:\n  files: [anomaly.yml]\n")
    res = wk("worker", "--config", "watchkeeper.yaml", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "anomaly.yml:7: anomaly.0.rules.0.threshold: group 'latency', rule 'LatencyAnomaly'" in res.stderr
