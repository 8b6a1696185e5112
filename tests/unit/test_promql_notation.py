"""promtool's expanding series notation, series lines, durations and expected-sample labels."""

from __future__ import annotations

import math

import pytest

from watchkeeper.core.promql.series_notation import (
    STALE,
    SeriesNotationError,
    expand_series,
    parse_duration,
    parse_metric,
    parse_series_line,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1+2x3", [1.0, 3.0, 5.0, 7.0]),
        ("0-1x5", [0.0, -1.0, -2.0, -3.0, -4.0, -5.0]),
        ("-2+1x2", [-2.0, -1.0, 0.0]),
        ("5x2", [5.0, 5.0, 5.0]),
        ("1 _ 3", [1.0, None, 3.0]),
        ("_x3", [None, None, None]),
        ("1 stale 2", [1.0, STALE, 2.0]),
        ("1e3 -Inf +Inf .5", [1000.0, -math.inf, math.inf, 0.5]),
        ("0x3", [0.0, 0.0, 0.0, 0.0]),
        ("0.1+0.1x2", [0.1, 0.2, 0.30000000000000004]),
    ],
)
def test_expand_series(text: str, expected: list[object]) -> None:
    assert expand_series(text) == expected


def test_expand_series_nan_and_errors() -> None:
    assert math.isnan(expand_series("NaN")[0])  # type: ignore[arg-type]
    with pytest.raises(SeriesNotationError, match="invalid value 'abc'"):
        expand_series("1 abc")


def test_parse_series_line() -> None:
    assert parse_series_line('http_requests{job="api", code="200"}') == ("http_requests", {"job": "api", "code": "200"})
    assert parse_series_line('{__name__="a:b:c", x="y"}') == ("a:b:c", {"x": "y"})
    assert parse_series_line("up") == ("up", {})
    with pytest.raises(SeriesNotationError, match="only '='"):
        parse_series_line('up{job=~"a"}')
    with pytest.raises(SeriesNotationError):
        parse_series_line("up{")


def test_parse_duration_and_metric() -> None:
    assert parse_duration("1h30m") == 5400.0
    assert parse_duration("0s") == 0.0
    assert parse_duration("2m15s") == 135.0
    assert parse_duration("500ms") == 0.5
    with pytest.raises(SeriesNotationError, match="invalid duration"):
        parse_duration("5 minutes")
    assert parse_metric('rec{a="b"}') == {"__name__": "rec", "a": "b"}
    assert parse_metric('{a="b"}') == {"a": "b"}
    assert parse_metric("{}") == {}
