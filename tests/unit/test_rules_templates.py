"""Prometheus' template functions, with outputs taken from Prometheus (its template tests and promtool;
tests/rules/alerts/templates_humanize proves the same through promtool)."""

from __future__ import annotations

import math

import pytest

from core.rules.templates import TemplateData, TemplateError, humanize, humanize1024, humanize_duration, render


@pytest.mark.parametrize(("v", "out"), [
    (0, "0"), (1, "1"), (1234, "1.234k"), (12345678, "12.35M"), (0.001234, "1.234m"), (-0.5, "-500m"),
    (math.inf, "+Inf"), (math.nan, "NaN"),
])
def test_humanize(v: float, out: str) -> None:
    assert humanize(v) == out


@pytest.mark.parametrize(("v", "out"), [(0, "0"), (1024, "1ki"), (1048576, "1Mi"), (1073741824 * 1.5, "1.5Gi")])
def test_humanize1024(v: float, out: str) -> None:
    assert humanize1024(v) == out


@pytest.mark.parametrize(("v", "out"), [
    (0, "0s"), (1, "1s"), (60, "1m 0s"), (3600, "1h 0m 0s"), (86400 + 3600 + 61, "1d 1h 1m 1s"), (0.5, "500ms"),
    (0.0012, "1.2ms"), (-90, "-1m 30s"),
])
def test_humanize_duration(v: float, out: str) -> None:
    assert humanize_duration(v) == out


def test_render_values_labels_pipes_and_trim() -> None:
    d = TemplateData({"__name__": "x", "instance": "h:9100"}, 0.1234, {"region": "eu"}, "http://wk")
    assert render("{{ $value }} {{ $labels.instance }} {{ .Labels.instance }}", d) == "0.1234 h:9100 h:9100"
    assert render("{{ $value | humanizePercentage }}", d) == "12.34%"
    assert render('{{ printf "%.1f" $value }}|{{ $externalLabels.region }}|{{ $externalURL }}', d) == "0.1|eu|http://wk"
    assert render("a  {{- $labels.missing -}}  b", d) == "ab"
    assert render("{{ $labels.instance | toUpper }}", d) == "H:9100"


@pytest.mark.parametrize("bad", ["{{ range $labels }}x{{ end }}", "{{ $nope }}", "{{ humanizeTimestamp $value }}",
                                 "{{ notAFunction $value }}"])
def test_unsupported_constructs_are_refused(bad: str) -> None:
    with pytest.raises(TemplateError):
        render(bad, TemplateData({}, 1.0, {}))
