"""Every kind of mistake in a rule file gives one clear error naming file, line, group and rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchkeeper.core.errors import SourceError
from watchkeeper.core.rules.loader import load_rule_files, load_rules_text

GOOD = """groups:
  - name: api
    interval: 30s
    rules:
      - record: job:req:rate5m
        expr: sum by (job) (rate(req_total[5m]))
      - alert: ApiDown
        expr: up{job="api"} == 0
        for: 5m
        keep_firing_for: 1m
        labels: {severity: critical}
        annotations: {summary: "{{ $labels.instance }} down ({{ $value | humanize }})"}
"""


def test_a_good_file_loads_with_its_settings() -> None:
    (g,) = load_rules_text(GOOD, "r.yml")
    assert g.name == "api" and g.interval == 30 and [r.name for r in g.rules] == ["job:req:rate5m", "ApiDown"]
    alert = g.rules[1]
    assert alert.hold == 300 and alert.keep_firing_for == 60 and alert.labels == {"severity": "critical"}
    assert alert.line == 7 and alert.expr.max_lookback == 300


@pytest.mark.parametrize(("broken", "line", "says"), [
    (GOOD.replace("    rules:\n", "    rules: [\n", 1), 5, "invalid YAML"),
    (GOOD.replace("rate(req_total[5m])", "rated(req_total[5m])"), 6, "unknown function with name 'rated'"),
    (GOOD.replace("for: 5m", "for: 5 minutes"), 9, "invalid duration '5 minutes'"),
    (GOOD.replace("interval: 30s", "interval: soon"), 3, "invalid duration 'soon'"),
    (GOOD.replace("        expr: up{job=\"api\"} == 0\n", ""), 7, "Field required"),
    (GOOD.replace("      - alert: ApiDown", "      - alert: ApiDown\n        record: also"), 7, "exactly one of"),
    (GOOD.replace("keep_firing_for", "keep_firing"), 10, "Extra inputs are not permitted"),
    (GOOD.replace("record: job:req:rate5m", "record: job-req"), 5, "not a valid metric name"),
    (GOOD.replace("{severity: critical}", "{sev-erity: critical}"), 11, "not a valid label name"),
    (GOOD.replace("{{ $value | humanize }}", "{{ define `x` }}y{{ end }}"), 12, "is not supported"),
    (GOOD.replace("sum by (job) (rate(req_total[5m]))", "histogram_count(req_total)"), 6,
     "function histogram_count() is not supported yet"),
    (GOOD.replace("sum by (job) (rate(req_total[5m]))", 'req_total{a=~"(?=x)"}'), 6, "illegal regex"),
    (GOOD.replace("sum by (job) (rate(req_total[5m]))", 'label_replace(req_total, "a", "$1", "b", "(x)\\\\1")'), 6,
     "back-references"),
    (GOOD + "  - name: api\n    rules: []\n", 13, "used twice"),
])
def test_each_mistake_gives_one_clear_error(broken: str, line: int, says: str) -> None:
    with pytest.raises(SourceError) as err:
        load_rules_text(broken, "rules/api.yml")
    text = str(err.value)
    assert text.startswith(f"rules/api.yml:{line}:"), text
    assert says in text, text
    if line > 4 and "YAML" not in says and "used twice" not in says:
        assert "group 'api'" in text


def test_errors_name_the_rule() -> None:
    with pytest.raises(SourceError) as err:
        load_rules_text(GOOD.replace("for: 5m", "for: 5x"), "r.yml")
    assert "group 'api', rule 'ApiDown'" in str(err.value)


def test_the_same_group_name_in_two_files_is_refused(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yml", tmp_path / "b.yml"
    a.write_text(GOOD)
    b.write_text(GOOD)
    with pytest.raises(SourceError, match="already used in"):
        load_rule_files([str(a), str(b)])


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot read file"):
        load_rule_files([str(tmp_path / "nope.yml")])


def test_empty_rules_and_groups_load_as_promtool_reads_them() -> None:
    """`rules:` or `groups:` left empty (null in YAML) is an empty list, as in awesome-prometheus-alerts' files."""
    [group] = load_rules_text("groups:\n- name: g\n  rules:\n")
    assert group.rules == []
    assert load_rules_text("groups:\n") == []


def test_wild_rules_with_the_newly_supported_constructs_load() -> None:
    text = """groups:
- name: wild
  rules:
  - record: node:ready
    expr: label_replace(kube_node_status_condition{condition="Ready"}, "node", "$1", "node", "(.*)\\\\..*")
  - alert: Restarting
    expr: ceil(increase(restarts_total[15m:1m])) > 0 and on() hour() >= 8
    annotations:
      summary: '{{ with query "up" }}{{ . | first | value | humanize }}{{ end }}'
      description: '{{ $v := $value }}{{ if gt $v 1.0 }}many{{ else }}one{{ end }}'
      count: '{{ range $i, $x := query "up" }}{{ $i }}{{ end }}'
"""
    [group] = load_rules_text(text)
    assert [r.name for r in group.rules] == ["node:ready", "Restarting"]
