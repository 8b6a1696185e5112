"""Prometheus' template functions, with outputs taken from Prometheus (its template tests and promtool;
tests/rules/alerts/templates_humanize proves the same through promtool)."""

from __future__ import annotations

import math

import pytest

from watchkeeper.core.rules.templates import (
    QuerySample,
    TemplateData,
    TemplateError,
    check,
    expand,
    humanize,
    humanize1024,
    humanize_duration,
    render,
)


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


@pytest.mark.parametrize("bad", ["{{ range $labels }}x", "{{ $nope }}", "{{ notAFunction $value }}",
                                 '{{ define "x" }}y{{ end }}', "{{ if }}x{{ end }}", "{{ end }}", "{{ $value",
                                 "{{ else }}", "{{ with $value }}x{{ else }}y{{ else }}z{{ end }}"])
def test_unsupported_constructs_are_refused(bad: str) -> None:
    with pytest.raises(TemplateError):
        render(bad, TemplateData({}, 1.0, {}))


def _query(q: str) -> list[QuerySample]:
    """A stand-in for the engine's store: two `up` series, as the engine's query would return them."""
    assert q == "up"
    return [QuerySample({"__name__": "up", "instance": "a:1"}, 1.0),
            QuerySample({"__name__": "up", "instance": "b:2"}, 0.0)]


def test_actions_variables_and_query() -> None:
    d = TemplateData({"job": "db", "instance": "db-1.example.com:5432"}, 0.25, {}, "http://wk/prefix", _query)
    assert render('{{ if eq $labels.job "web" }}W{{ else if eq .Labels.job "db" }}D{{ else }}X{{ end }}', d) == "D"
    assert render('{{ with query "up" }}{{ . | first | label "instance" }}{{ end }}', d) == "a:1"
    assert render('{{ range $i, $s := query "up" }}{{ $i }}={{ $s.Value }},{{ end }}', d) == "0=1,1=0,"
    assert render('{{ range query "up" }}{{ .Labels.instance | stripPort }} {{ else }}none{{ end }}', d) == "a b "
    assert render("{{ $x := 1 }}{{ with $value }}{{ $x = . }}{{ end }}{{ $x }}", d) == "0.25"
    assert render("{{ (first (query \"up\")).Value }} {{ pathPrefix }}", d) == "1 /prefix"
    assert render("{{ title \"hello wORLD\" }}|{{ $labels.instance | stripDomain }}", d) == "Hello WORLD|db-1:5432"
    assert render("{{ humanizeTimestamp 0 }}", d) == "1970-01-01 00:00:00 +0000 UTC"


def test_query_is_checked_when_rendered_not_loaded() -> None:
    check('{{ with query "up" }}{{ . | first | value }}{{ end }}')  # parses: fine at load time
    no_store = TemplateData({}, 1.0, {})
    assert "query is not available" in expand('{{ query "up" }}', no_store)
    empty = TemplateData({}, 1.0, {}, "", lambda q: [])
    assert "first() called on vector with no elements" in expand('{{ query "up" | first | value }}', empty)


def test_comparing_a_float_with_an_int_is_an_error_as_in_go() -> None:
    """promtool renders `{{ if gt $value 1 }}` as an error (incompatible types); `1.0` compares."""
    d = TemplateData({}, 2.5, {})
    assert "incompatible types for comparison" in expand("{{ if gt $value 1 }}big{{ end }}", d)
    assert expand("{{ if gt $value 1.0 }}big{{ end }}", d) == "big"
    assert "invalid type for comparison" in expand("{{ if lt true false }}x{{ end }}", d)
