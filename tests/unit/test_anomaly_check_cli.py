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
        detector: calibrated
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


def test_replay_prints_the_transitions_the_agent_would_publish(tmp_path: Path) -> None:
    import numpy as np

    (tmp_path / "a.yml").write_text(GOOD.replace("threshold: 0.99", "threshold: 0.999").replace("for: 2m", "for: 1m"))
    rng = np.random.default_rng(0)
    x = 100 + rng.normal(0, 2, 2600)
    x[2000:] += 30
    body = "timestamp,value\n" + "".join(f"{1_700_000_000 + 10 * i},{float(v)!r}\n" for i, v in enumerate(x))
    (tmp_path / "p95.csv").write_text(body + "oops\n1800000000,lots\n")
    with open(tmp_path / "p95.csv") as stdin:
        res = subprocess.run([sys.executable, "-m", "watchkeeper", "anomaly", "replay", "a.yml", "--alert",
                              "LatencyAnomaly", "--label", "job=api"], stdin=stdin, text=True, capture_output=True,
                             env=ENV, cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.stderr
    rows = [line.split(",") for line in res.stdout.splitlines()]
    assert rows[0] == ["event_time", "state", "alertname", "value"]
    t = [(int(float(r[0]) - 1_700_000_000) // 10, r[1]) for r in rows[1:]]
    assert t == [(2000, "pending"), (2006, "firing"), (2048, "resolved")]
    assert "line 2602: expected 2 fields" in res.stderr and "line 2603: value 'lots' is not a number" in res.stderr
    missing = wk("anomaly", "replay", "a.yml", "--alert", "Nope", cwd=tmp_path)
    assert missing.returncode == 2 and "no rule with alert 'Nope'" in missing.stderr


def test_replay_with_the_default_detector_fires_once_on_a_shift_and_holds_it(tmp_path: Path) -> None:
    """The README's rule: no `detector:` (the default, `ensemble`), threshold 0.7, `for: 0s`, `keep_firing_for: 5m`."""
    import numpy as np

    rule = GOOD.replace("        detector: calibrated\n", "").replace("threshold: 0.99", "threshold: 0.7").replace(
        "for: 2m", "for: 0s\n        keep_firing_for: 5m")
    (tmp_path / "a.yml").write_text(rule)
    x = 100 + np.random.default_rng(0).normal(0, 2, 2600)
    x[2000:] += 30
    body = "timestamp,value\n" + "".join(f"{1_700_000_000 + 10 * i},{float(v)!r}\n" for i, v in enumerate(x))
    res = subprocess.run([sys.executable, "-m", "watchkeeper", "anomaly", "replay", "a.yml", "--alert",
                          "LatencyAnomaly", "--label", "job=api"], input=body, text=True, capture_output=True,
                         env=ENV, cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.stderr
    t = [(int(float(r.split(",")[0]) - 1_700_000_000) // 10, r.split(",")[1]) for r in res.stdout.splitlines()[1:]]
    assert t == [(2000, "firing"), (2031, "resolved")]  # 5m = 30 points held, resolved at the next one
