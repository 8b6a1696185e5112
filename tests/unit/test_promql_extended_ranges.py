"""Prometheus 3's `anchored`/`smoothed` modifiers and info()'s selector, rewritten for promql-parser, and
the extended-range kernels on hand-worked series (the script tests/promql/prometheus3_extended_ranges.test
runs them through the evaluator)."""

from __future__ import annotations

import numpy as np
import pytest

from watchkeeper.core.promql import extended_ranges, info_function
from watchkeeper.core.promql.evaluator import PromQLError, parse


@pytest.mark.parametrize(("expr", "rewritten"), [
    ("rate(x[5m] anchored)", 'rate(x{__wk_anchored__=""}[5m] )'),
    ('rate(x{a="b"}[5m] offset 1m smoothed)', 'rate(x{__wk_smoothed__="",a="b"}[5m] offset 1m )'),
    ("x @ 100 smoothed + 0", 'x{__wk_smoothed__=""} @ 100  + 0'),
    ("x offset -100 smoothed", 'x{__wk_smoothed__=""} offset -100 '),
    ("x{} @ start() anchored", 'x{__wk_anchored__=""} @ start() '),
    ("job:rate5m[5m] ANCHORED", 'job:rate5m{__wk_anchored__=""}[5m] '),
    ('x{l="anchored"} and smoothed_total', 'x{l="anchored"} and smoothed_total'),
])
def test_the_keyword_moves_into_its_selector(expr: str, rewritten: str) -> None:
    assert extended_ranges.rewrite(expr) == rewritten


@pytest.mark.parametrize(("expr", "message"), [
    ("rate(x[5m:1m] anchored)", "not supported for subqueries"),
    ("rate((x)[5m:] smoothed)", "not supported for subqueries"),
    ("max_over_time(x[5m] anchored)", "anchored modifier can only be used with: changes, delta, increase, rate, "
                                      "resets - not with max_over_time"),
    ("changes(x[5m] smoothed)", "smoothed modifier can only be used with: delta, increase, rate - not with changes"),
    ("rate(x[5m] anchored smoothed)", "cannot be used together"),
])
def test_misplaced_modifiers_fail_at_load_time(expr: str, message: str) -> None:
    with pytest.raises(PromQLError, match=message):
        parse(expr, "prometheus3")


def test_prometheus2_refuses_the_modifiers_naming_the_semantics() -> None:
    with pytest.raises(PromQLError, match="Prometheus 3's"):
        parse("rate(x[5m] anchored)", "prometheus2")


def test_an_anchored_range_reaches_a_lookback_further_back() -> None:
    assert parse("rate(x[10m] anchored)", "prometheus3").max_lookback == 600 + 300 + 300


def _ms(*seconds: int) -> np.ndarray:
    return np.array([s * 1000 for s in seconds], dtype=np.int64)


def test_extended_rate_counts_a_reset_after_the_anchor() -> None:
    # 30 at the range start (120 s), a reset to 5, then 15: an increase of 5 + 10
    ts, values = _ms(0, 60, 120, 180, 240), np.array([10.0, 20.0, 30.0, 5.0, 15.0])
    assert extended_ranges.extended_rate(ts, values, 120_000, 240_000, 120.0, False, True, False) == 15.0
    assert extended_ranges.extended_rate(ts, values, 120_000, 240_000, 120.0, False, True, True) == 0.125
    # delta does not correct resets: 15 - 30
    assert extended_ranges.extended_rate(ts, values, 120_000, 240_000, 120.0, False, False, False) == -15.0
    # nothing after the range start: no result
    assert extended_ranges.extended_rate(ts, values, 240_000, 300_000, 60.0, False, True, False) is None


def test_smoothed_rate_interpolates_both_ends() -> None:
    # range (90 s, 150 s] over 0 @ 60 s, 60 @ 120 s, 120 @ 180 s: 30 at 90 s, 90 at 150 s
    ts, values = _ms(60, 120, 180), np.array([0.0, 60.0, 120.0])
    assert extended_ranges.extended_rate(ts, values, 90_000, 150_000, 60.0, True, True, False) == 60.0


def test_smoothed_value_and_anchor_index() -> None:
    ts, values = _ms(60, 120), np.array([3.0, 2.0])
    assert extended_ranges.smoothed_value(ts, values, 90_000) == 2.5
    assert extended_ranges.smoothed_value(ts, values, 120_000) == 2.0
    assert extended_ranges.smoothed_value(ts, values, 200_000) == 2.0
    assert extended_ranges.smoothed_value(ts, values, 30_000) is None
    assert extended_ranges.anchored_start(ts, 60_000) == 0
    assert extended_ranges.anchored_start(ts, 120_000) is None


def test_extend_floats_adds_the_range_ends() -> None:
    t, v = extended_ranges.extend_floats(_ms(60, 120, 180), np.array([1.0, 2.0, 3.0]), 90_000, 150_000, True)
    assert t.tolist() == [90_000, 120_000, 150_000] and v.tolist() == [1.5, 2.0, 2.5]


def test_info_selector_gets_a_marker_that_rejects_the_empty_string() -> None:
    assert info_function.rewrite('info(x, {a=~".*"}) + info(y)') == 'info(x, {__wk_info__="1",a=~".*"}) + info(y)'
    assert info_function.rewrite('info(rate(x[5m]), {__name__="b_info"})') == (
        'info(rate(x[5m]), {__wk_info__="1",__name__="b_info"})')
    parse('info(x, {a=~".*"})', "prometheus3")  # promql-parser alone refuses a selector matching empty
