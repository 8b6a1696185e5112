"""Generated SLO rules against the reference: promtool checks them and runs the page-alert timing test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from watchkeeper.cli import main

FIXTURES = Path(__file__).parent.parent / "fixtures" / "sloth"
pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) not installed")


def test_generated_rules_pass_promtool_check(tmp_path: Path) -> None:
    out = tmp_path / "home-wifi.rules.yml"
    assert main(["slo", "generate", str(FIXTURES / "home-wifi.yml"), "-o", str(out)]) == 0
    checked = subprocess.run(["promtool", "check", "rules", "--lint=none", str(out)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 34 rules found" in checked.stdout
    proc = subprocess.run(["promtool", "check", "rules", str(out)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Sloth's period rule carries only sloth_window, so promtool's (non-fatal) duplicate lint flags it in
    # Sloth's own output too: the generated file is faithful, warning included.
    reference = subprocess.run(
        ["promtool", "check", "rules", str(FIXTURES / "home-wifi.sloth-output.yml")], capture_output=True, text=True
    )
    assert ("duplicate rule" in proc.stdout) == ("duplicate rule" in reference.stdout)


def test_page_alert_fires_when_the_sre_workbook_predicts(tmp_path: Path) -> None:
    rules = tmp_path / "incident.rules.yml"
    assert main(["slo", "generate", str(FIXTURES / "incident-spec.yml"), "-o", str(rules)]) == 0
    shutil.copy(FIXTURES / "incident.promtool-test.yml", tmp_path)
    proc = subprocess.run(
        ["promtool", "test", "rules", "incident.promtool-test.yml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_cli_error_names_file_line_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text((FIXTURES / "incident-spec.yml").read_text().replace("objective: 99.9", "objective: 0"))
    assert main(["slo", "generate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:8: slos.0.objective:" in err


@pytest.mark.slow
def test_page_alert_fires_on_watchkeepers_rule_engine_at_the_same_minute(tmp_path: Path) -> None:
    """The same promtool test file, run by Watchkeeper's engine (what the rules agent runs live)."""
    from watchkeeper.core.rules.unit_test import run_test_file

    rules = tmp_path / "incident.rules.yml"
    assert main(["slo", "generate", str(FIXTURES / "incident-spec.yml"), "-o", str(rules)]) == 0
    shutil.copy(FIXTURES / "incident.promtool-test.yml", tmp_path)
    res = run_test_file(str(tmp_path / "incident.promtool-test.yml"), "prometheus2")  # promtool 2.42's semantics
    assert res.ok, "\n".join(res.failures)


def test_slo_specs_join_the_rules_agent_with_source_slo() -> None:
    from watchkeeper.agents.rules_wiring import slo_rule_groups
    from watchkeeper.core.promql.series_store import SeriesStore
    from watchkeeper.core.rules.engine import EngineStep, RuleEngine

    groups = slo_rule_groups([str(FIXTURES / "incident-spec.yml")])
    assert [g.name.split("-")[2] for g in groups] == ["sli", "meta", "alerts"]
    assert all(g.source == "slo" for g in groups)
    engine = RuleEngine(groups)
    store = SeriesStore()
    for minute in range(120):  # everything failing: page and ticket alerts fire (Sloth's have no `for`)
        store.append_one("http_requests_total", {"job": "checkout", "code": "500"}, minute * 60.0, minute * 100.0)
    step = EngineStep()
    for g in groups:
        engine.eval_group(g, 7200.0, store, step)
    assert step.recorded and any(r.name == "slo:sli_error:ratio_rate5m" for r in step.recorded)
    firing = {a.labels["sloth_severity"]: a for a in step.alerts if a.state == "firing"}
    assert set(firing) == {"page", "ticket"} and all(a.source == "slo" for a in firing.values())
