"""Anomaly rule files: a good file loads with its settings; every kind of mistake gives one clear error
naming file, line, group and rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchkeeper.core.anomaly_rules import load_anomaly_files, load_anomaly_text, parse_selector
from watchkeeper.core.detectors import DEFAULT_DETECTOR
from watchkeeper.core.errors import SourceError

GOOD = """anomaly:
  - name: latency
    rules:
      - alert: LatencyAnomaly
        selector: 'http_request_duration_seconds{job="api", instance=~"web-.*"}'
        input: aggregates
        field: p95
        detector: ensemble
        params: {window: 100}
        threshold: 0.99
        for: 2m
        keep_firing_for: 30s
        labels: {severity: high}
        annotations: {summary: "{{ $labels.job }} p95 is unusual (score {{ $value }})"}
      - alert: CpuAnomaly
        selector: '{__name__="cpu_percent"}'
        input: samples
        threshold: 0.999
"""


def test_a_good_file_loads_with_its_settings() -> None:
    (g,) = load_anomaly_text(GOOD, "a.yml")
    assert g.name == "latency" and [r.alert for r in g.rules] == ["LatencyAnomaly", "CpuAnomaly"]
    lat, cpu = g.rules
    assert (lat.input, lat.field, lat.detector, lat.params, lat.threshold) == ("aggregates", "p95", "ensemble",
                                                                              {"window": 100}, 0.99)
    assert lat.hold == 120 and lat.keep_firing_for == 30 and lat.labels == {"severity": "high"}
    assert lat.line == 4 and lat.key == "latency/LatencyAnomaly"
    assert lat.new_detector().params["window"] == 100
    assert (cpu.input, cpu.field, cpu.detector, cpu.hold) == ("samples", "value", DEFAULT_DETECTOR, 0.0)
    assert DEFAULT_DETECTOR == "ensemble"  # one default for rules and `watchkeeper detect`, the best on real data
    assert cpu.new_detector().name == DEFAULT_DETECTOR


def test_the_selector_matches_like_prometheus() -> None:
    sel = parse_selector('http_request_duration_seconds{job="api", instance=~"web-.*", env!="dev"}')
    assert sel.matches("http_request_duration_seconds", {"job": "api", "instance": "web-1"})
    assert not sel.matches("http_request_duration_seconds", {"job": "api", "instance": "xweb-1"})  # anchored
    assert not sel.matches("http_request_duration_seconds", {"job": "api", "instance": "web-1", "env": "dev"})
    assert not sel.matches("other", {"job": "api", "instance": "web-1"})
    assert parse_selector('{__name__=~"cpu_.*"}').matches("cpu_percent", {})


@pytest.mark.parametrize(("broken", "line", "says"), [
    (GOOD.replace("    rules:\n", "    rules: [\n", 1), 4, "invalid YAML"),
    (GOOD.replace("detector: ensemble", "detector: prophet"), 8, "unknown detector 'prophet'"),
    (GOOD.replace("params: {window: 100}", "params: {windw: 100}"), 9, "has no parameter 'windw'"),
    (GOOD.replace("params: {window: 100}", "params: {window: big}"), 9, "expected int"),
    (GOOD.replace("job=\"api\", ", "job=\"api\" "), 5, "invalid selector"),
    (GOOD.replace("'http_request_duration_seconds{job=\"api\", instance=~\"web-.*\"}'",
                  "'rate(http_requests_total[5m])'"), 5, "must be a plain vector selector"),
    (GOOD.replace("threshold: 0.99\n", "threshold: 1.5\n"), 10, "use a value in (0, 1]"),
    (GOOD.replace("threshold: 0.99\n", "threshold: high\n"), 10, "valid number"),
    (GOOD.replace("for: 2m", "for: 2 minutes"), 11, "invalid duration '2 minutes'"),
    (GOOD.replace("field: p95", "field: p75"), 7, "unknown field 'p75'"),
    (GOOD.replace("input: samples", "input: samples\n        field: p95"), 18, "scores their value"),
    (GOOD.replace("input: aggregates", "input: logs"), 6, "'aggregates' or 'samples'"),
    (GOOD.replace("        threshold: 0.999\n", ""), 15, "Field required"),
    (GOOD.replace("keep_firing_for", "keep_firing"), 12, "Extra inputs are not permitted"),
    (GOOD.replace("{severity: high}", "{sev-erity: high}"), 13, "not a valid label name"),
    (GOOD.replace("alert: CpuAnomaly", "alert: LatencyAnomaly"), 15, "used twice in this group"),
    (GOOD.replace("{{ $labels.job }}", "{{ if $labels.job }}x"), 14, "template"),
])
def test_each_mistake_gives_one_clear_error(broken: str, line: int, says: str) -> None:
    with pytest.raises(SourceError) as err:
        load_anomaly_text(broken, "rules/anomaly.yml")
    text = str(err.value)
    assert text.startswith(f"rules/anomaly.yml:{line}:"), text
    assert says in text, text
    if "YAML" not in says:
        assert "group 'latency'" in text, text
        rule = "CpuAnomaly" if line >= 15 and "used twice" not in says else "LatencyAnomaly"
        assert f"rule '{rule}'" in text, text


def test_the_error_names_the_field() -> None:
    with pytest.raises(SourceError) as err:
        load_anomaly_text(GOOD.replace("detector: ensemble", "detector: prophet"), "a.yml")
    assert err.value.field == "anomaly.0.rules.0.detector" and err.value.line == 8


def test_a_file_of_rules_in_prometheus_format_is_refused_clearly() -> None:
    with pytest.raises(SourceError, match="groups"):
        load_anomaly_text("groups: []\n", "a.yml")


def test_group_names_are_unique_across_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yml", tmp_path / "b.yml"
    a.write_text(GOOD)
    b.write_text(GOOD)
    assert len(load_anomaly_files([str(a)])[0].rules) == 2
    with pytest.raises(SourceError, match=f"already used in {a}"):
        load_anomaly_files([str(a), str(b)])
    with pytest.raises(SourceError, match="cannot read file"):
        load_anomaly_files([str(tmp_path / "missing.yml")])
