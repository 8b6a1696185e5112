"""Prometheus 3's constant duration expressions, folded before promql-parser sees them."""

from __future__ import annotations

import pytest

from core.promql.duration_expr import DurationExprError, fold, rewrite
from core.promql.evaluator import PromQLError, parse


@pytest.mark.parametrize(("text", "seconds"), [
    ("26m+4m", 1800.0), ("60*30", 1800.0), ("2m*(10+5)", 1800.0), ("-5m+35m", 1800.0), ("1h/2", 1800.0),
    ("1h30m % 1h", 1800.0), ("30m1s-30m1s % 1m", 1800.0), ("24m+((1.5*2m)+2m)", 1740.0), ("(100 + 2)", 102.0),
    ("(-2 * 2)", -4.0), ("(2 ^ 2)", 4.0), ("500ms*2", 1.0),
])
def test_constant_expressions_fold_to_seconds(text: str, seconds: float) -> None:
    assert fold(text) == seconds


@pytest.mark.parametrize("text", ["5m", "600", "", "step()", "step()+1ms", "min_of(1m, 2m)"])
def test_plain_durations_and_query_functions_are_left_alone(text: str) -> None:
    assert fold(text) is None


def test_rewrite_skips_string_literals_and_keeps_plain_ranges() -> None:
    expr = 'rate(x{a=~"[0-9]+[1m+1m]"}[2m+1m]) + y[5m:] offset (60*2) + z offset -(30s+30s) + w[5m]'
    assert rewrite(expr) == ('rate(x{a=~"[0-9]+[1m+1m]"}[180000ms]) + y[5m:] offset 120000ms'
                             ' + z offset -60000ms + w[5m]')


def test_division_by_zero_is_a_parse_error_naming_the_expression() -> None:
    with pytest.raises(DurationExprError):
        fold("1h/0")
    with pytest.raises(PromQLError, match=r"division by zero.*x\[1h/0\]"):
        parse("x[1h/0]")
