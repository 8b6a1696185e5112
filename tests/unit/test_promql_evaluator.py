"""The PromQL evaluator: given these series, expect these values at these times (Prometheus 2.42).

Pinned to the prometheus2 semantics (promtool 2.42's answers, which these values come from): `parse` and
`evaluate` below default to it; a test of Prometheus 3 asks for "prometheus3" by name.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from watchkeeper.core.errors import CoreError
from watchkeeper.core.promql import evaluator
from watchkeeper.core.promql.evaluator import (
    DEFAULT_SEMANTICS,
    FUNCTIONS,
    SUPPORTED_AGGREGATIONS,
    ParsedExpr,
    PromQLError,
    Semantics,
    Value,
    evaluate_range,
)
from watchkeeper.core.promql.series_store import SeriesStore
from watchkeeper.core.promql.values import Scalar, SeriesData, VectorSample


def parse(expr: str, semantics: Semantics = "prometheus2") -> ParsedExpr:
    return evaluator.parse(expr, semantics)


def evaluate(expr: ParsedExpr | str, at: float, store: SeriesStore, **kwargs: float) -> Value:
    return evaluator.evaluate(parse(expr) if isinstance(expr, str) else expr, at, store, **kwargs)  # type: ignore[arg-type]

SeriesSpec = dict[tuple[str, tuple[tuple[str, str], ...]], list[float | None]]


def _store(series: SeriesSpec, step: float = 60.0) -> SeriesStore:
    store = SeriesStore()
    for (name, labels), values in series.items():
        for i, v in enumerate(values):
            if v is not None:
                store.append_one(name, dict(labels), i * step, v)
    return store


def _vec(result: object) -> dict[tuple[tuple[str, str], ...], float]:
    assert isinstance(result, list)
    return {tuple(sorted(s.labels.items())): s.value for s in result}


COUNTER = _store({
    ("req_total", (("job", "a"),)): [0, 60, 120, 180, 240, 300, 360],
    ("req_total", (("job", "b"),)): [0, 10, 20, 5, 15, 25, 35],
})  # fmt: skip


def test_rate_and_increase_with_counter_reset() -> None:
    # the range is closed, [60 s, 360 s]: for b, 35 - 10 + 20 (the reset from 20 to 5) = 45 over 300 s
    assert _vec(evaluate("rate(req_total[5m])", 360.0, COUNTER)) == {
        (("job", "a"),): 1.0,
        (("job", "b"),): pytest.approx(0.15),
    }
    assert _vec(evaluate("increase(req_total[5m])", 360.0, COUNTER))[(("job", "b"),)] == 45.0


def test_rate_extrapolates_to_zero_for_a_counter_that_starts_in_the_range() -> None:
    store = _store({("c_total", ()): [None, None, None, 10, 20, 30]})
    # points at 180..300 s in range [0, 300]: the counter would have been 0 at 120 s (60 s before its
    # first point, within 1.1 sample intervals), so extrapolate back 60 s, not 180 s: 20 * 180 / 120
    assert _vec(evaluate("increase(c_total[5m])", 300.0, store)) == {(): 30.0}


def test_irate_deriv_predict_linear() -> None:
    assert _vec(evaluate("irate(req_total[5m])", 360.0, COUNTER)) == {(("job", "a"),): 1.0, (("job", "b"),): 10 / 60}
    gauge = _store({("g", ()): [0, 6, 12, 18, 24, 30]})
    assert _vec(evaluate("deriv(g[5m])", 300.0, gauge)) == {(): 0.1}
    assert _vec(evaluate("predict_linear(g[5m], 600)", 300.0, gauge)) == {(): 90.0}


def test_instant_lookback_is_five_minutes_inclusive_and_stale_markers_end_series() -> None:
    store = _store({("up", ()): [1.0]})
    assert _vec(evaluate("up", 300.0, store)) == {(("__name__", "up"),): 1.0}
    assert evaluate("up", 300.001, store) == []
    assert evaluate("up", 100.0, store, lookback=60.0) == []
    store.mark_stale("up", {}, 60.0)
    assert evaluate("up", 120.0, store) == []
    assert _vec(evaluate("count_over_time(up[5m])", 120.0, store)) == {(): 1.0}


def test_offset_reads_the_past() -> None:
    result = evaluate('req_total{job="a"} offset 2m', 360.0, COUNTER)
    assert _vec(result) == {(("__name__", "req_total"), ("job", "a")): 240.0}


def test_over_time_functions() -> None:
    store = _store({("m", ()): [3, 1, 4, 1, 5, 9]})
    at = 300.0
    assert _vec(evaluate("avg_over_time(m[5m])", at, store)) == {(): pytest.approx(23 / 6)}
    assert _vec(evaluate("min_over_time(m[5m])", at, store)) == {(): 1.0}
    assert _vec(evaluate("max_over_time(m[5m])", at, store)) == {(): 9.0}
    assert _vec(evaluate("sum_over_time(m[5m])", at, store)) == {(): 23.0}
    assert _vec(evaluate("count_over_time(m[5m])", at, store)) == {(): 6.0}
    assert _vec(evaluate("last_over_time(m[5m])", at, store)) == {(("__name__", "m"),): 9.0}
    assert _vec(evaluate("quantile_over_time(0.5, m[5m])", at, store)) == {(): 3.5}
    assert _vec(evaluate("changes(m[5m])", at, store)) == {(): 5.0}
    assert _vec(evaluate("resets(m[5m])", at, store)) == {(): 2.0}


def test_changes_is_zero_on_a_stuck_series() -> None:
    store = _store({("m", ()): [7, 7, 7, 7, 7, 7]})
    assert _vec(evaluate("changes(m[5m]) == 0", 300.0, store)) == {(): 0.0}


def test_absent_labels_come_from_equality_matchers() -> None:
    assert _vec(evaluate('absent(nope{job="x", env=~"p.*"})', 0.0, COUNTER)) == {(("job", "x"),): 1.0}
    assert evaluate("absent(req_total)", 0.0, COUNTER) == []
    assert _vec(evaluate('absent_over_time(nope{a="b"}[1m])', 0.0, COUNTER)) == {(("a", "b"),): 1.0}


def test_scalars_time_vector() -> None:
    assert evaluate("time()", 123.5, COUNTER) == Scalar(123.5)
    assert evaluate("1 + 2 * 3", 0.0, COUNTER) == Scalar(7.0)
    assert evaluate("2 > bool 1", 0.0, COUNTER) == Scalar(1.0)
    assert _vec(evaluate("vector(time())", 60.0, COUNTER)) == {(): 60.0}
    assert math.isnan(evaluate("scalar(req_total)", 60.0, COUNTER).value)  # type: ignore[union-attr]


def test_aggregations_by_without() -> None:
    store = _store({
        ("cpu", (("host", "a"), ("mode", "user"))): [1.0],
        ("cpu", (("host", "a"), ("mode", "sys"))): [3.0],
        ("cpu", (("host", "b"), ("mode", "user"))): [8.0],
    })  # fmt: skip
    assert _vec(evaluate("sum by (host) (cpu)", 0.0, store)) == {(("host", "a"),): 4.0, (("host", "b"),): 8.0}
    assert _vec(evaluate("avg without (host) (cpu)", 0.0, store)) == {(("mode", "sys"),): 3.0, (("mode", "user"),): 4.5}
    assert _vec(evaluate("count(cpu)", 0.0, store)) == {(): 3.0}
    assert _vec(evaluate("stddev(cpu)", 0.0, store)) == {(): float(np.std([1.0, 3.0, 8.0]))}
    assert _vec(evaluate("quantile(0.5, cpu)", 0.0, store)) == {(): 3.0}
    top = evaluate("topk(1, cpu)", 0.0, store)
    assert top == [VectorSample({"__name__": "cpu", "host": "b", "mode": "user"}, 8.0)]
    assert _vec(evaluate("bottomk by (host) (1, cpu)", 0.0, store)) == {
        (("__name__", "cpu"), ("host", "a"), ("mode", "user")): 1.0,
        (("__name__", "cpu"), ("host", "b"), ("mode", "user")): 8.0,
    }


def test_histogram_quantile_interpolates_within_the_bucket() -> None:
    store = _store({
        ("h_bucket", (("le", "1"),)): [50.0],
        ("h_bucket", (("le", "2"),)): [90.0],
        ("h_bucket", (("le", "+Inf"),)): [100.0],
    })  # fmt: skip
    assert _vec(evaluate("histogram_quantile(0.7, h_bucket)", 0.0, store)) == {(): 1.5}
    assert _vec(evaluate("histogram_quantile(0.95, h_bucket)", 0.0, store)) == {(): 2.0}


def test_vector_matching_and_name_dropping() -> None:
    store = _store({
        ("err", (("svc", "a"), ("code", "500"))): [2.0],
        ("req", (("svc", "a"),)): [10.0],
        ("req", (("svc", "b"),)): [20.0],
        ("info", (("svc", "a"), ("team", "x"))): [1.0],
    })  # fmt: skip
    assert _vec(evaluate("err / ignoring(code) req", 0.0, store)) == {(("svc", "a"),): 0.2}
    assert _vec(evaluate("err / on(svc) req", 0.0, store)) == {(("svc", "a"),): 0.2}
    assert _vec(evaluate("req * on(svc) group_left(team) info", 0.0, store)) == {(("svc", "a"), ("team", "x")): 10.0}
    assert _vec(evaluate("req > 15", 0.0, store)) == {(("__name__", "req"), ("svc", "b")): 20.0}
    assert _vec(evaluate("req > bool 15", 0.0, store)) == {(("svc", "a"),): 0.0, (("svc", "b"),): 1.0}
    assert _vec(evaluate("req unless on(svc) err", 0.0, store)) == {(("__name__", "req"), ("svc", "b")): 20.0}
    assert len(_vec(evaluate("req or err", 0.0, store))) == 3
    assert _vec(evaluate("req and on(svc) info", 0.0, store)) == {(("__name__", "req"), ("svc", "a")): 10.0}


def test_matching_errors_are_promql_errors() -> None:
    store = _store({
        ("a", (("x", "1"), ("y", "1"))): [1.0],
        ("a", (("x", "1"), ("y", "2"))): [1.0],
        ("b", (("x", "1"),)): [1.0],
    })  # fmt: skip
    with pytest.raises(PromQLError, match="many-to-many matching not allowed"):
        evaluate("b + on(x) a", 0.0, store)
    with pytest.raises(PromQLError, match="must be explicit"):
        evaluate("a + on(x) b", 0.0, store)
    twins = _store({("a", (("x", "1"),)): [1.0], ("b", (("x", "1"),)): [2.0]})
    with pytest.raises(PromQLError, match="same labelset"):
        evaluate('abs({__name__=~"a|b"})', 0.0, twins)


@pytest.mark.parametrize(
    ("expr", "what"),
    [
        ("histogram_count(x)", "function histogram_count()"),
        ("limit_ratio(0.5, x)", "aggregation limit_ratio"),
        ('"a string"', "a string literal"),
    ],
)
def test_unsupported_constructs_fail_at_parse_time(expr: str, what: str) -> None:
    with pytest.raises(PromQLError, match=f"{what}.*not supported yet"):
        parse(expr)


def test_syntax_errors_are_core_errors() -> None:
    with pytest.raises(CoreError, match="cannot parse PromQL 'rate\\(x'"):
        parse("rate(x")


def test_parsed_expression_knows_how_far_back_it_reads() -> None:
    assert parse("rate(x[10m] offset 1h) + y").max_lookback == 600 + 3600 + 300
    assert parse("x").max_lookback == 300


def test_evaluate_range_steps_through_time() -> None:
    [series] = evaluate_range('rate(req_total{job="a"}[2m])', 120.0, 360.0, 120.0, COUNTER)
    assert isinstance(series, SeriesData)
    assert series.labels == {"job": "a"}
    assert series.ts.tolist() == [120.0, 240.0, 360.0]
    assert series.values.tolist() == [1.0, 1.0, 1.0]


def test_numbers_as_durations_are_seconds_everywhere() -> None:
    """Prometheus 3 reads `x[600]` as 600 s; so does Watchkeeper, in ranges and offsets alike."""
    for number, duration in (("resets(req_total[600])", "resets(req_total[10m])"),
                             ("rate(req_total[300] offset 60)", "rate(req_total[5m] offset 1m)"),
                             ("req_total offset 120", "req_total offset 2m")):
        assert _vec(evaluate(number, 360.0, COUNTER)) == _vec(evaluate(duration, 360.0, COUNTER))
        assert parse(number).max_lookback == parse(duration).max_lookback


def test_holt_winters_is_read_as_double_exponential_smoothing() -> None:
    gauge = _store({("g", ()): [1, 5, 2, 8, 3, 9]})
    assert _vec(evaluate("holt_winters(g[5m], 0.5, 0.3)", 300.0, gauge)) == _vec(
        evaluate("double_exponential_smoothing(g[5m], 0.5, 0.3)", 300.0, gauge))
    # a string that merely contains the old name is left alone
    renamed = evaluate('label_replace(vector(1), "f", "holt_winters(x)", "", "")', 0.0, gauge)
    assert _vec(renamed) == {(("f", "holt_winters(x)"),): 1.0}
    with pytest.raises(PromQLError, match="smoothing factor"):
        evaluate("holt_winters(g[5m], 1, 0.3)", 300.0, gauge)


def test_label_functions_validate_names_at_parse_time() -> None:
    with pytest.raises(PromQLError, match="invalid destination label name '1x'"):
        parse('label_replace(x, "1x", "$1", "a", "(.*)")')
    with pytest.raises(PromQLError, match="invalid source label name 'a-b'"):
        parse('label_join(x, "d", ",", "a-b")')
    with pytest.raises(PromQLError, match="invalid count_values label name"):
        parse('count_values("a b", x)')


def test_label_replace_that_makes_duplicates_is_an_error() -> None:
    store = _store({("x", (("a", "1"),)): [1.0], ("x", (("a", "2"),)): [2.0]})
    with pytest.raises(PromQLError, match="same labelset"):
        evaluate('label_replace(x, "a", "same", "a", ".*")', 0.0, store)


def test_sort_puts_nan_last_both_ways() -> None:
    store = _store({("x", (("a", "1"),)): [2.0], ("x", (("a", "2"),)): [math.nan], ("x", (("a", "3"),)): [1.0]})
    assert [s.labels["a"] for s in evaluate("sort(x)", 0.0, store)] == ["3", "1", "2"]  # type: ignore[union-attr]
    assert [s.labels["a"] for s in evaluate("sort_desc(x)", 0.0, store)] == ["1", "3", "2"]  # type: ignore[union-attr]
    by_label = _store({("x", (("n", "host10"),)): [1.0], ("x", (("n", "host9"),)): [1.0]})
    assert [s.labels["n"] for s in evaluate('sort_by_label(x, "n")', 0.0, by_label)] == [  # type: ignore[union-attr]
        "host9", "host10"]


def test_limitk_keeps_the_first_k_series_of_each_group() -> None:
    store = _store({("x", (("g", "a"), ("i", str(i)))): [float(i)] for i in range(4)})
    assert sorted(_vec(evaluate("limitk(2, x)", 0.0, store)).values()) == [0.0, 1.0]


def test_the_rules_page_lists_exactly_the_dispatch_table() -> None:
    """The rules page's list of PromQL functions and aggregations is the dispatch table, no more, no less."""
    readme = (Path(__file__).resolve().parents[2] / "docs" / "rules.md").read_text()
    section = readme[readme.index("  - range functions:"):readme.index("  Values equal promtool")]
    listed = set(re.findall(r"`([a-z_0-9]+)`", section))
    supported = set(FUNCTIONS) | SUPPORTED_AGGREGATIONS
    syntax = {"holt_winters", "by", "without", "atan2", "bool", "on", "ignoring", "group_left", "group_right",
              "and", "or", "unless"}
    assert supported - listed == set(), "supported but not in the README"
    assert listed - supported - syntax == set(), "in the README but not supported"


def test_subquery_steps_are_aligned_and_closed_at_the_left() -> None:
    gauge = _store({("g", ()): [1, 5, 2, 8, 3, 9, 4]})  # at 0, 60, ... 360 s
    # [5m:2m] at 360 s: steps at 120, 240, 360 (multiples of 120 in [60, 360]) read 2, 3, 4
    assert _vec(evaluate("sum_over_time(g[5m:2m])", 360.0, gauge)) == {(): 9.0}
    assert _vec(evaluate("count_over_time(g[6m:1m])", 360.0, gauge)) == {(): 7.0}  # 0 s included, as 2.42
    assert _vec(evaluate("count_over_time(g[6m:])", 360.0, gauge, subquery_step=180.0)) == {(): 3.0}


def test_at_modifier_pins_the_time() -> None:
    gauge = _store({("g", ()): [1, 5, 2, 8, 3, 9, 4]})
    assert _vec(evaluate("g @ 120", 3600.0, gauge)) == {(("__name__", "g"),): 2.0}
    assert _vec(evaluate("g offset 1m @ 180", 0.0, gauge)) == {(("__name__", "g"),): 2.0}
    assert _vec(evaluate("g @ end()", 240.0, gauge)) == _vec(evaluate("g", 240.0, gauge))
    assert _vec(evaluate("max_over_time(g[2m] @ 300)", 0.0, gauge)) == {(): 9.0}


def test_prometheus3_is_the_default() -> None:
    """DESIGN.md: Prometheus 3 semantics unless prometheus2 is asked for."""
    assert DEFAULT_SEMANTICS == "prometheus3"
    assert evaluator.parse("x").semantics == "prometheus3"


def test_prometheus3_semantics_are_left_open() -> None:
    """prometheus3: a point exactly `range` (or 5 m of lookback) old is out; regex `.` matches a
    newline; holt_winters is gone; atan2 drops the metric name."""
    gauge = _store({("g", ()): [1, 5, 2, 8, 3, 9, 4]})  # at 0, 60, ... 360 s
    two, three = parse("count_over_time(g[5m])"), parse("count_over_time(g[5m])", "prometheus3")
    assert _vec(evaluate(two, 300.0, gauge)) == {(): 6.0}
    assert _vec(evaluate(three, 300.0, gauge)) == {(): 5.0}
    stale_soon = _store({("g", ()): [7.0]})
    assert _vec(evaluate(parse("g"), 300.0, stale_soon)) == {(("__name__", "g"),): 7.0}
    assert evaluate(parse("g", "prometheus3"), 300.0, stale_soon) == []
    assert _vec(evaluate(parse("count_over_time(g[6m:1m])", "prometheus3"), 360.0, gauge)) == {(): 6.0}
    newline = SeriesStore()
    newline.append_one("x", {"l": "a\nb"}, 0.0, 1.0)
    assert evaluate(parse('x{l=~"a.b"}'), 0.0, newline) == []
    assert len(evaluate(parse('x{l=~"a.b"}', "prometheus3"), 0.0, newline)) == 1  # type: ignore[arg-type]
    with pytest.raises(PromQLError, match="holt_winters"):
        parse("holt_winters(g[5m], 0.5, 0.5)", "prometheus3")
    assert _vec(evaluate(parse("g atan2 g", "prometheus3"), 0.0, gauge)) == {(): math.atan2(1, 1)}
    assert _vec(evaluate(parse("g atan2 g"), 0.0, gauge)) == {(("__name__", "g"),): math.atan2(1, 1)}
    with pytest.raises(PromQLError, match="unknown semantics"):
        parse("g", "prometheus4")  # type: ignore[arg-type]


def test_prometheus3_drops_type_and_unit_with_the_name() -> None:
    """Prometheus 3 drops the metadata labels __type__ and __unit__ wherever it drops __name__; 2.42 knew
    nothing of them and keeps them as plain labels."""
    store = _store({("x", (("__type__", "counter"), ("__unit__", "bytes"), ("a", "1"))): [2.0]})
    assert _vec(evaluate(parse("x * 2", "prometheus3"), 0.0, store)) == {(("a", "1"),): 4.0}
    assert _vec(evaluate(parse("-x", "prometheus3"), 0.0, store)) == {(("a", "1"),): -2.0}
    assert _vec(evaluate(parse("x * 2"), 0.0, store)) == {
        (("__type__", "counter"), ("__unit__", "bytes"), ("a", "1")): 4.0}
    assert _vec(evaluate(parse("x", "prometheus3"), 0.0, store)) == {
        (("__name__", "x"), ("__type__", "counter"), ("__unit__", "bytes"), ("a", "1")): 2.0}
