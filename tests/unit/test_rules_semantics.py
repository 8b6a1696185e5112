"""`rules.semantics` (watchkeeper.yaml) and `--semantics`: every rule expression, template `query` and
promtool-test expression is evaluated with the configured PromQL semantics, from the config file to the
worker's engines. The distinguishing case: a series sampled every minute holds 6 points in [t-5m, t]
(Prometheus 2) and 5 in (t-5m, t] (Prometheus 3)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from watchkeeper.agents.rules_wiring import load_rules
from watchkeeper.cli import main
from watchkeeper.commands.worker import rules_agent_settings
from watchkeeper.core.promql.evaluator import DEFAULT_SEMANTICS
from watchkeeper.core.promql.series_store import SeriesStore
from watchkeeper.core.rules.engine import RuleEngine
from watchkeeper.core.rules.loader import load_rules_text
from watchkeeper.core.rules.unit_test import run_test_file
from watchkeeper.plumbing.config import load_config
from watchkeeper.plumbing.errors import ConfigError

RULES = """groups:
  - name: g
    interval: 1m
    rules:
      - record: points_5m
        expr: count_over_time(metric[5m])
      - alert: FewPoints
        expr: count_over_time(metric[5m]) < 6
        annotations:
          seen: '{{ with query "count_over_time(metric[5m])" }}{{ . | first | value }}{{ end }}'
"""
EXPECTED = {"prometheus2": 6.0, "prometheus3": 5.0}


def _store() -> SeriesStore:
    store = SeriesStore(retention=math.inf)
    for k in range(11):
        store.append_one("metric", {}, k * 60.0, float(k))
    return store


@pytest.mark.parametrize("semantics", ["prometheus2", "prometheus3"])
def test_engine_records_alerts_and_queries_with_the_loaded_semantics(semantics: str) -> None:
    groups = load_rules_text(RULES, semantics=semantics)  # type: ignore[arg-type]
    assert {r.expr.semantics for g in groups for r in g.rules} == {semantics}
    engine = RuleEngine(groups, semantics=semantics)  # type: ignore[arg-type]
    engine.start_at(600.0)
    step = engine.advance(_store(), 600.0)
    assert [s.value for s in step.recorded] == [EXPECTED[semantics]]
    fired = [a for a in step.alerts if a.rule == "FewPoints"]
    if semantics == "prometheus3":
        assert len(fired) == 1 and fired[0].annotations["seen"] == "5"
    else:
        assert fired == []


def test_default_semantics_is_documented_one() -> None:
    assert load_rules_text(RULES)[0].rules[0].expr.semantics == DEFAULT_SEMANTICS


@pytest.mark.parametrize("semantics", ["prometheus2", "prometheus3"])
def test_config_semantics_reaches_the_worker_engines(tmp_path: Path, semantics: str) -> None:
    (tmp_path / "r.yml").write_text(RULES)
    # full: the rule's template queries a raw series, which the partitioned mode refuses (test_rules_partition_problems)
    (tmp_path / "watchkeeper.yaml").write_text(f"rules:\n  files: [r.yml]\n  semantics: {semantics}\n"
                                               "  evaluation: full\n")
    cfg = load_config(str(tmp_path / "watchkeeper.yaml"))
    assert cfg.rules.semantics == semantics
    loaded = load_rules(rules_agent_settings(cfg))
    assert loaded is not None
    assert {r.expr.semantics for g in loaded.groups for r in g.rules} == {semantics}
    engine = loaded.engine_factory(loaded.units[0], None, 600.0)
    assert isinstance(engine, RuleEngine) and engine.semantics == semantics
    assert [s.value for s in engine.advance(_store(), 600.0).recorded] == [EXPECTED[semantics]]


def test_unknown_semantics_in_config_names_line_and_field(tmp_path: Path) -> None:
    f = tmp_path / "watchkeeper.yaml"
    f.write_text("rules:\n  semantics: prometheus4\n")
    with pytest.raises(ConfigError, match=r":2: rules.semantics:"):
        load_config(str(f))


UNIT_TEST = """rule_files: [r.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: metric
        values: 0+1x10
    promql_expr_test:
      - expr: points_5m
        eval_time: 10m
        exp_samples:
          - labels: points_5m
            value: 5
"""


def test_rule_unit_tests_run_with_the_chosen_semantics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "r.yml").write_text(RULES)
    (tmp_path / "t.test.yml").write_text(UNIT_TEST)  # written for Prometheus 3: 5 points in (5m, 10m]
    test = str(tmp_path / "t.test.yml")
    assert run_test_file(test, "prometheus3").ok
    res = run_test_file(test, "prometheus2")
    assert not res.ok and "points_5m" in "\n".join(res.failures)
    assert main(["rules", "test", "--semantics", "prometheus3", test]) == 0
    assert main(["rules", "test", "--semantics", "prometheus2", test]) == 1
    assert main(["rules", "check", "--semantics", "prometheus3", str(tmp_path / "r.yml")]) == 0
    capsys.readouterr()


def test_holt_winters_is_gone_in_prometheus3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Prometheus 3 renamed it double_exponential_smoothing: a 2.x rule file using it fails `rules check`
    in prometheus3 and loads in prometheus2."""
    f = tmp_path / "hw.yml"
    f.write_text("groups:\n  - name: g\n    rules:\n      - record: r\n        expr: holt_winters(x[5m], 0.5, 0.5)\n")
    assert main(["rules", "check", "--semantics", "prometheus2", str(f)]) == 0
    assert main(["rules", "check", "--semantics", "prometheus3", str(f)]) == 1
    assert "holt_winters" in capsys.readouterr().out
