"""Prometheus 3's constant duration expressions, folded before promql-parser sees them."""

from __future__ import annotations

import math

import pytest

from watchkeeper.core.promql.duration_expr import DurationExprError, fold, rewrite
from watchkeeper.core.promql.evaluator import PromQLError, evaluate, evaluate_range, parse
from watchkeeper.core.promql.series_store import SeriesStore


@pytest.mark.parametrize(("text", "seconds"), [
    ("26m+4m", 1800.0), ("60*30", 1800.0), ("2m*(10+5)", 1800.0), ("-5m+35m", 1800.0), ("1h/2", 1800.0),
    ("1h30m % 1h", 1800.0), ("30m1s-30m1s % 1m", 1800.0), ("24m+((1.5*2m)+2m)", 1740.0), ("(100 + 2)", 102.0),
    ("(-2 * 2)", -4.0), ("(2 ^ 2)", 4.0), ("500ms*2", 1.0), ("min_of(1m, 2m)", 60.0), ("max_of(1m,2m)+1", 121.0),
])
def test_constant_expressions_fold_to_seconds(text: str, seconds: float) -> None:
    assert fold(text) == seconds


@pytest.mark.parametrize("text", ["5m", "600", "", "step()", "step()+1ms", "min_of(range(), 2m)"])
def test_plain_durations_and_query_functions_are_left_alone(text: str) -> None:
    """Without a query, `step()` and `range()` have no value: the expression stays for evaluate()."""
    assert fold(text) is None


@pytest.mark.parametrize(("text", "seconds"), [
    ("step()", 5.0), ("STep()+1ms", 5.001), ("1+(step()-5)*2", 1.0), ("min_of(step()+1,1h)", 6.0),
    ("max_of(min_of(step()+1,1h),1ms)", 6.0), ("range()", 10.0), ("min_of(range(), 8s)", 8.0),
])
def test_query_functions_fold_with_the_query(text: str, seconds: float) -> None:
    assert fold(text, (5.0, 10.0)) == pytest.approx(seconds)


def test_offset_takes_one_signed_term_unless_parenthesised() -> None:
    """promql/parser's offset_duration_expr: `x offset step()*2` is (x offset step()) * 2."""
    q = (5.0, 10.0)
    assert rewrite("x offset step()*2", q) == "x offset 5000ms*2"
    assert rewrite("x offset -min_of(step(), 1s)^0", q) == "x offset -1000ms^0"
    assert rewrite("x offset +min_of(step(), 1s)+8000", q) == "x offset 1000ms+8000"
    assert rewrite("x offset (-step()*2)", q) == "x offset -10000ms"
    assert rewrite("x offset range()", (0.0, 0.0)) == "x "  # an instant query: no offset at all


def test_a_range_query_reads_its_own_step_and_range() -> None:
    store = SeriesStore(retention=math.inf)
    for t in range(101):
        store.append_one("m", {}, float(t), float(t))
    result = evaluate_range(parse("count_over_time(m[step()])", "prometheus3"), 50.0, 60.0, 10.0, store)
    assert result[0].values.tolist() == [10.0, 10.0]
    result = evaluate_range(parse("m offset min_of(range(), 8s)", "prometheus3"), 50.0, 60.0, 5.0, store)
    assert result[0].values.tolist() == [42.0, 47.0, 52.0]
    assert evaluate(parse("m offset range()", "prometheus3"), 50.0, store)[0].value == 50.0  # type: ignore[index,union-attr]


def test_rewrite_skips_string_literals_and_keeps_plain_ranges() -> None:
    expr = 'rate(x{a=~"[0-9]+[1m+1m]"}[2m+1m]) + y[5m:] offset (60*2) + z offset -(30s+30s) + w[5m]'
    assert rewrite(expr) == ('rate(x{a=~"[0-9]+[1m+1m]"}[180000ms]) + y[5m:] offset 120000ms'
                             ' + z offset -60000ms + w[5m]')


def test_division_by_zero_is_a_parse_error_naming_the_expression() -> None:
    with pytest.raises(DurationExprError):
        fold("1h/0")
    with pytest.raises(PromQLError, match=r"division by zero.*x\[1h/0\]"):
        parse("x[1h/0]")
