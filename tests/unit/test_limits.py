"""Given points and series at and past each limit, expect exactly the ones past it refused, with its reason."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchkeeper.schemas.limits import (
    MAX_EPOCH_SECONDS,
    IngestLimits,
    LimitError,
    check_json_shape,
    check_series_points,
    check_text_lines,
    is_stale_marker,
    keep_within,
    point_problem,
    points_ok,
    series_problem,
)
from watchkeeper.schemas.samples import SeriesBlock

NOW = 1_800_000_000.0
LIMITS = IngestLimits()
STALE_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]


@pytest.mark.parametrize(("ts", "value", "reason"), [
    (NOW, 1.0, None),
    (0.0, 1.0, None),
    (NOW + 600, 1.0, None),
    (NOW + 600.001, 1.0, "future"),
    (-0.5, 1.0, "bad_timestamp"),
    (math.inf, 1.0, "bad_timestamp"),
    (math.nan, 1.0, "bad_timestamp"),
    (1e300, 1.0, "bad_timestamp"),
    (NOW, math.nan, "bad_value"),
    (NOW, -math.inf, "bad_value"),
    (NOW, STALE_NAN, "stale_marker"),
    (NOW, 1e300, None),
    (NOW, -1e300, None),
    (NOW, 1.7e308, "bad_value"),  # a window's sum of such values would overflow
    (NOW, -1.0001e300, "bad_value"),
])
def test_point_problem(ts: float, value: float, reason: str | None) -> None:
    assert point_problem(ts, value, LIMITS, NOW) == reason
    assert points_ok([ts], [value], LIMITS, NOW) == (reason is None)


def test_a_max_future_larger_than_int64_nanoseconds_still_stops_there() -> None:
    assert point_problem(MAX_EPOCH_SECONDS + 1, 1.0, IngestLimits(max_future=1e12), NOW) == "bad_timestamp"


def test_values_whose_sum_overflows_are_checked_one_by_one() -> None:
    check_series_points([NOW] * 3, [1e300] * 3, LIMITS, NOW)
    with pytest.raises(LimitError, match=r"point 1: value=1.7e\+308 is not a finite number within"):
        check_series_points([NOW] * 2, [1e300, 1.7e308], LIMITS, NOW)


@given(ts=st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=5),
       values=st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=5))
def test_the_fast_check_agrees_with_the_point_by_point_one(ts: list[float], values: list[float]) -> None:
    n = min(len(ts), len(values))
    ts, values = ts[:n], values[:n]
    exact = all(point_problem(t, v, LIMITS, NOW) is None for t, v in zip(ts, values, strict=True))
    if points_ok(ts, values, LIMITS, NOW):
        assert exact
    if not exact:
        with pytest.raises(LimitError):
            check_series_points(ts, values, LIMITS, NOW)


def test_only_the_exact_staleness_bits_are_a_staleness_marker() -> None:
    assert is_stale_marker(STALE_NAN) and not is_stale_marker(math.nan) and not is_stale_marker(1.0)


@pytest.mark.parametrize(("name", "labels", "reason"), [
    ("m", {}, None),
    ("m:sub", {"_a": "b"}, None),
    ("1m", {}, "metric_name_invalid"),
    ("m", {"é‹img…>": "v"}, "label_name_invalid"),
    ("m", {"a-b": "v"}, "label_name_invalid"),
    ("m", {"ǅ": "v"}, "label_name_invalid"),  # a titlecase letter, which str.isalpha takes
    ("m", {f"l{i}": "v" for i in range(29)}, None),
    ("m", {f"l{i}": "v" for i in range(30)}, "too_many_labels"),
    ("m", {"v": "x" * 2048}, None),
    ("m", {"v": "€" * 683}, "label_value_too_long"),  # 2,049 bytes in 683 characters
])
def test_series_problem(name: str, labels: dict[str, str], reason: str | None) -> None:
    problem = series_problem(name, labels, LIMITS)
    assert (problem[0] if problem else None) == reason


def test_keep_within_takes_what_it_can() -> None:
    good = SeriesBlock(name="m", ts=[NOW, NOW + 3600, NOW + 1], values=[1.0, 2.0, 3.0])
    bad = SeriesBlock(name="m", labels={"v": "x" * 3000}, ts=[NOW], values=[1.0])
    kept, dropped = keep_within([good, bad], LIMITS, NOW)
    assert [(b.ts, b.values) for b in kept] == [([NOW, NOW + 1], [1.0, 3.0])]
    assert dropped == {"future": 1, "label_value_too_long": 1}


def test_json_shape_refuses_container_and_element_floods_before_parsing() -> None:
    small = IngestLimits(max_series_per_request=2, max_points_per_request=3)
    check_json_shape(b'[{"source":"s","labels":{},"series":[{"name":"m","labels":{},"ts":[1,2,3],"values":[1,2,3]},'
                     b'{"name":"m","labels":{},"ts":[],"values":[]}]}]', small)  # 2 series, 3 points: fine
    with pytest.raises(LimitError, match="16 JSON arrays and objects") as info:
        check_json_shape(b"[" + b"[]," * 14 + b"[]]", small)
    assert info.value.reason == "too_many_series"
    with pytest.raises(LimitError, match="135 JSON elements") as info:
        check_json_shape(b"[" + b"0," * 135 + b"0]", small)
    assert info.value.reason == "too_many_points"


def test_text_lines_bound_the_exposition_before_parsing() -> None:
    check_text_lines("# HELP m x\n# TYPE m gauge\nm 1\n" * 3 + "\n", IngestLimits(max_points_per_request=3))
    with pytest.raises(LimitError, match="11 lines") as info:
        check_text_lines("m 1\n" * 11, IngestLimits(max_points_per_request=3))
    assert info.value.reason == "too_many_points"
