"""The SLO report's budget figures equal Prometheus' own evaluation of Sloth's rules on the same SLI samples.

promtool (the reference) evaluates the generated meta recordings over a 5 m SLI series; the same samples go
into ClickHouse and through the report. The ratios are multiples of 2^-12, so every sum is exact in float64
and the two must agree to the last bit, not approximately. Prometheus' windows are (t - w, t], the report's
[from, to), so the report's range ends 1 ms after the evaluation time.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests import report_dataset as rd
from watchkeeper.cli import main
from watchkeeper.reports.clickhouse_reader import get_reader
from watchkeeper.reports.query_progress import QueryRunner
from watchkeeper.reports.slo_report import build_slo_report
from watchkeeper.reports.timerange import TimeRange

FIXTURES = Path(__file__).parent.parent / "fixtures" / "sloth"
pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) not installed")
LABELS = {
    "sloth_id": "checkout-requests-availability", "sloth_service": "checkout", "sloth_slo": "requests-availability"
}
EVAL_MINUTE = 4000


def _ratios() -> np.ndarray:
    i = np.arange(4320)
    ratios = (1 + i % 3) * 2.0**-12
    ratios[(i >= 3000) & (i < 3090)] = 2.0**-6  # a 90-minute incident at 1.56 %
    return ratios


def test_report_budget_equals_prometheus_evaluation(ch_dsn: str, tmp_path: Path) -> None:
    ratios = _ratios()
    assert main(["slo", "generate", str(FIXTURES / "incident-spec.yml"), "-o", str(tmp_path / "rules.yml")]) == 0
    # The report, on the same samples (one a minute from t0) and the objective Sloth's rule records.
    t0 = rd.END - timedelta(minutes=EVAL_MINUTE)
    ts = t0.timestamp() + 60.0 * np.arange(ratios.size)
    client = get_reader(ch_dsn)
    rd.create_tables(client)
    sli_labels = {**LABELS, "owner": "payments", "sloth_window": "5m"}
    rd.load(client, rd.Dataset(samples=[
        rd.Series("slo:sli_error:ratio_rate5m", sli_labels, ts, ratios),
        rd.Series("slo:objective:ratio", LABELS, ts[:1], np.array([99.9 / 100])),
    ]), replays=2)
    with QueryRunner(client, steps=3, quiet=True) as q:
        _, (f,) = build_slo_report(q, TimeRange(t0, rd.END + timedelta(milliseconds=1)), charts=False)
    # Hand check first: the period ratio is the mean of the 4001 samples up to the evaluation time.
    seen = ratios[: EVAL_MINUTE + 1]
    assert f.samples == seen.size
    assert f.budget_remaining == 1 - seen.mean() / (1 - 99.9 / 100)
    sel = ", ".join(f'{k}="{v}"' for k, v in sorted(sli_labels.items()))
    test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        # Recordings before the rules that read them, within one evaluation (see incident.promtool-test.yml).
        "group_eval_order": [f"sloth-slo-{kind}-{LABELS['sloth_id']}" for kind in
                             ("sli-recordings", "meta-recordings", "alerts")],
        "tests": [{
            "interval": "1m",
            "input_series": [{
                "series": f"slo:sli_error:ratio_rate5m{{{sel}}}",
                "values": " ".join(repr(float(v)) for v in ratios),
            }],
            "promql_expr_test": [
                {"expr": f"max by (sloth_id) ({metric})", "eval_time": f"{EVAL_MINUTE}m",
                 "exp_samples": [{"labels": f'{{sloth_id="{LABELS["sloth_id"]}"}}', "value": float(value)}]}
                for metric, value in (
                    ("slo:period_error_budget_remaining:ratio", f.budget_remaining),
                    ("slo:period_burn_rate:ratio", f.burn["30d"]),
                    ("slo:current_burn_rate:ratio", f.burn_now),
                    ("slo:sli_error:ratio_rate30d", f.error_ratio),
                )
            ],
        }],
    }
    (tmp_path / "report-vs-prometheus.test.yml").write_text(yaml.safe_dump(test, width=1 << 20))
    proc = subprocess.run(["promtool", "test", "rules", "report-vs-prometheus.test.yml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
