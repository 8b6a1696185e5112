"""Partitioned evaluation (core.promql.sharding) equals the single-store evaluation.

Given series split over N partitions by a hash of their labels, each partition's partials (through
JSON), merged and evaluated with the merge stage's empty store, give what `evaluate` gives over one
store holding every series: the same samples (sum/avg/stddev/stdvar within float rounding) or the
same error.
"""

from __future__ import annotations

import math
import os
import zlib
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from watchkeeper.core.promql import sharding
from watchkeeper.core.promql.evaluator import PromQLError, Semantics, evaluate, parse
from watchkeeper.core.promql.series_store import SeriesStore
from watchkeeper.core.promql.values import STALE_NAN, Scalar, SeriesData, VectorSample, labels_key

Series = tuple[str, dict[str, str], list[float], list[float]]


def partition_of(name: str, labels: dict[str, str], n: int) -> int:
    return zlib.crc32(repr(labels_key({**labels, "__name__": name})).encode()) % n


def stores(data: list[Series], n: int) -> tuple[SeriesStore, list[SeriesStore]]:
    single, parts = SeriesStore(), [SeriesStore() for _ in range(n)]
    for name, labels, ts, values in data:
        single.append(name, labels, np.array(ts), np.array(values))
        parts[partition_of(name, labels, n)].append(name, labels, np.array(ts), np.array(values))
    return single, parts


def outcome(fn: Any) -> Any:
    try:
        return fn()
    except PromQLError as exc:
        return ("error", str(exc))


def partitioned(text: str, t: float, parts: list[SeriesStore], semantics: Semantics,
                merge_store: SeriesStore | None = None, merge_local: Any = None) -> Any:
    p = sharding.plan(parse(text, semantics), merge_local) if merge_local else sharding.plan(parse(text, semantics))
    wire = [orjson.loads(orjson.dumps(sharding.partials_to_json(sharding.partial(p, t, s)))) for s in parts]
    leaves = sharding.merge(p, [sharding.partials_from_json(w) for w in wire])
    return outcome(lambda: evaluate(p.expr, t, merge_store or SeriesStore(), leaves=leaves))


def normal(value: Any) -> Any:
    """Order-free form: Prometheus does not order an instant vector (sort() aside, compared as a list)."""
    if isinstance(value, tuple):
        return value
    if isinstance(value, Scalar):
        return [((), value.value)]
    out = []
    for s in value:
        if isinstance(s, VectorSample):
            out.append((labels_key(s.labels), s.value))
        else:
            assert isinstance(s, SeriesData)
            out.append((labels_key(s.labels), tuple(s.ts.tolist()), tuple(s.values.tolist())))
    return sorted(out, key=lambda x: x[0])


def close(a: float, b: float, rel: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return a == b or abs(a - b) <= rel * max(abs(a), abs(b))


def assert_same(expected: Any, got: Any, text: str, rel: float = 1e-9) -> None:
    e, g = normal(expected), normal(got)
    if isinstance(e, tuple) or isinstance(g, tuple):
        assert e == g, text
        return
    assert [x[0] for x in e] == [x[0] for x in g], text
    for a, b in zip(e, g, strict=True):
        if len(a) == 2:
            assert close(a[1], b[1], rel), (text, a, b)
        else:
            assert a[1] == b[1], (text, a, b)
            assert all(close(x, y, rel) for x, y in zip(a[2], b[2], strict=True)), (text, a, b)


def check(text: str, data: list[Series], n: int, t: float, semantics: Semantics = "prometheus3") -> None:
    single, parts = stores(data, n)
    expected = outcome(lambda: evaluate(parse(text, semantics), t, single))
    assert_same(expected, partitioned(text, t, parts, semantics), f"{text} over {n} partitions ({semantics})")


def counter(name: str, labels: dict[str, str], step: float = 15.0, until: float = 1200.0,
            reset_at: float | None = None) -> Series:
    ts = np.arange(0.0, until, step)
    values = np.cumsum(np.arange(len(ts)) % 7).astype(float)
    if reset_at is not None:
        values[ts >= reset_at] -= values[ts >= reset_at][0]
    return name, labels, ts.tolist(), values.tolist()


FIXED: list[Series] = [
    counter("x", {"job": "a", "i": "1"}), counter("x", {"job": "a", "i": "2"}, reset_at=600.0),
    counter("x", {"job": "b", "i": "1"}, step=30.0), counter("y", {"job": "a", "i": "1"}),
    counter("y", {"job": "b", "i": "3"}, until=700.0),
]


@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("text", [
    "sum by (job) (rate(x[5m]))", "rate(x[5m]) > 0.1", "avg(x)", "count without (i) (x)", "min(x)", "max(y)",
    "group by (i) (x)", "stddev(x)", "stdvar by (job) (x)", "topk(2, x)", "bottomk(1, x)", "quantile(0.3, x)",
    "count_values(\"v\", x)", "max_over_time(sum(rate(x[5m]))[10m:1m])", "absent(nope)", "absent(x)",
    "absent_over_time(y[1m])", "sum(x) / on() group_left count(y)", "x and y", "x unless on (job) y",
    "scalar(sum(x))", "label_replace(x, \"job\", \"z\", \"job\", \".*\")", "rate({job=\"a\"}[5m])",
    "x offset 5m", "sum(x @ 500)", "x[5m]",
])
def test_fixed_expressions_split(text: str, n: int) -> None:
    for t in (600.0, 1000.0, 1500.0):
        check(text, FIXED, n, t)


# ----------------------------------------------------------------------------- properties over random stores

NAMES = ("x", "y", "z")
# WK_SHARD_NO_SHRINK=1: report the first failure as found (shrinking big stores takes minutes)
PHASES = [ph for ph in Phase if not (os.environ.get("WK_SHARD_NO_SHRINK") and ph is Phase.shrink)]
EXPRESSIONS = [
    # series leaves
    "x", "x[2m]", "rate(x[2m])", "increase(x[3m]) > 2", "irate(x[2m]) * 2", "-x", "x == bool 3", "abs(x - 4)",
    "resets(x[5m])", "changes(y[5m])", "deriv(x[3m])", "predict_linear(x[5m], 60)", "last_over_time(x[2m])",
    "timestamp(x)", "clamp(x, 1, 5)", "round(x, 2)", "x offset 1m", "x @ 300", "max_over_time(rate(x[2m])[5m:1m])",
    "quantile_over_time(0.5, x[5m])", "absent_over_time(x[1m])", "absent_over_time(nope[1m])",
    "{job=\"a\"}", "rate({i=\"1\"}[2m])", "-{job=\"b\"}", "{__name__=~\"x|y\"} * 2", "sum_over_time({job=\"a\"}[3m])",
    "label_replace(x, \"job\", \"a\", \"\", \"\")", "label_replace(x, \"i\", \"$1\", \"job\", \"(.*)\")",
    "label_join(y, \"job\", \"-\", \"i\")", "label_replace({i=\"2\"}, \"__name__\", \"w\", \"\", \"\")",
    "ceil(label_replace({job=\"a\"}, \"i\", \"0\", \"\", \"\"))",
    "label_replace(rate({job=\"a\"}[2m]), \"q\", \"1\", \"\", \"\")",
    "last_over_time(label_replace(x, \"job\", \"c\", \"\", \"\")[3m:1m])",
    # aggregations
    "sum(x)", "sum by (job) (rate(x[2m]))", "avg without (i) (x)", "count(y)", "min by (i) (x)", "max(x)",
    "group by (job) (y)", "stddev(x)", "stdvar by (job) (x)", "count_values(\"v\", y)",
    "count_values without (i) (\"v\", x)",
    "topk(2, x)", "bottomk(1, y)", "topk by (job) (1, rate(x[2m]))", "quantile(0.25, x)", "quantile by (job) (0.9, y)",
    "sum({job=\"a\"})", "sum by (job) (label_replace(x, \"job\", \"a\", \"\", \"\"))", "avg(-{i=\"1\"})",
    "limitk(1, x)", "topk(scalar(count(y)), x)", "sum(x @ 240)", "count(x offset 2m)",
    # the merge stage's part
    "sum(x) / count(x)", "sum by (job) (x) / on (job) group_left sum by (job, i) (y)",
    "sum by (job) (x) - sum by (i) (y)", "x and y", "x or on (job) y", "x unless on (i) y", "x + on (i) y",
    "x / ignoring (job) group_left y", "absent(x)", "absent(nope{job=\"q\"})", "absent(sum(nope))", "scalar(sum(x))",
    "x > scalar(sum(y))", "vector(1) + sum(x)", "histogram_quantile(0.5, sum by (i) (rate(x[3m])))",
    "max_over_time(sum(x)[5m:1m])", "rate(sum(x)[5m:1m] offset 1m)", "avg_over_time(count(x)[4m:30s] @ 600)",
    "sort(sum by (job) (x))", "count(x > 3) or vector(0)",
    "sum by (job) (rate(x[2m])) > on (job) sum by (job) (rate(y[2m]))",
    "time() - max(timestamp(y))", "min_over_time((x - y)[3m:1m])",
]


@st.composite
def series_data(draw: st.DrawFn) -> list[Series]:
    out: list[Series] = []
    key = st.tuples(st.sampled_from(NAMES), st.sampled_from(["a", "b"]), st.sampled_from(["1", "2", "3"]))
    keys = draw(st.lists(key, min_size=0, max_size=10, unique=True))
    for name, job, inst in keys:
        n = draw(st.integers(1, 25))
        gaps = draw(st.lists(st.sampled_from([15.0, 15.0, 15.0, 30.0, 60.0, 200.0]), min_size=n, max_size=n))
        ts = np.cumsum([draw(st.sampled_from([0.0, 30.0, 120.0])), *gaps[1:]])
        steps = draw(st.lists(st.integers(0, 5), min_size=n, max_size=n))
        values = np.cumsum(steps).astype(float)
        for reset in draw(st.lists(st.integers(0, n - 1), max_size=2)):
            values[reset:] -= values[reset]
        special = st.sampled_from([math.nan, math.inf, -math.inf, STALE_NAN])
        odd = draw(st.lists(st.tuples(st.integers(0, n - 1), special), max_size=2))
        for i, v in odd:
            values[i] = v
        out.append((name, {"job": job, "i": inst}, ts.tolist(), values.tolist()))
    return out


@settings(max_examples=int(os.environ.get("WK_SHARD_EXAMPLES", "300")), deadline=None, phases=PHASES)
@given(data=series_data(), n=st.sampled_from([1, 2, 3, 4]), t=st.sampled_from([120.0, 300.0, 480.0, 600.0, 900.0]),
       text=st.sampled_from(EXPRESSIONS), semantics=st.sampled_from(["prometheus3", "prometheus2"]))
def test_partitioned_equals_single_store(data: list[Series], n: int, t: float, text: str, semantics: Semantics) -> None:
    check(text, data, n, t, semantics)


# ----------------------------------------------------------------------------- counterexamples found

def test_range_of_only_a_staleness_marker_is_empty_not_a_crash() -> None:
    """rate() over a window holding nothing but a marker crashed the evaluator itself (IndexError)."""
    ts = [float(x) for x in (135, 150, 165, 180, 195, 210, 225, 240, 440, 640, 840)]
    data: list[Series] = [("x", {"job": "a", "i": "1"}, ts, [0.0] * (len(ts) - 1) + [STALE_NAN])]
    assert evaluate(parse("rate(x[2m])"), 900.0, stores(data, 1)[0]) == []
    check("rate(x[2m])", data, 1, 900.0)


def test_collision_inside_a_subquery_reports_the_single_store_labels() -> None:
    """label_replace colliding in a subquery's step: each partition found its own collision first; the
    subquery is now raw, evaluated at the merge stage in the store's order."""
    ts = [float(15 * k) for k in range(23)]
    data: list[Series] = [("x", {"job": "a", "i": "2"}, [0.0, 15.0], [0.0, 0.0]),
                          ("x", {"job": "a", "i": "3"}, ts, [0.0] * len(ts)),
                          ("x", {"job": "b", "i": "1"}, ts, [0.0] * len(ts)),
                          ("x", {"job": "b", "i": "3"}, ts, [0.0] * len(ts))]
    text = 'last_over_time(label_replace(x, "job", "c", "", "")[3m:1m])'
    for n in (2, 3, 4):
        check(text, data, n, 120.0)
    assert "raw" in sharding.plan(parse(text)).describe()


def test_range_function_at_the_merge_stage_reads_its_selector_raw() -> None:
    """rate() of a name-less selector may collide, so it runs at the merge stage; it reads its range
    selector's points itself, so that selector must be a raw leaf (a series leaf was ignored: [])."""
    data: list[Series] = [("x", {"job": "a", "i": "1"}, [15.0 * k for k in range(9)], [float(k) for k in range(9)])]
    for text in ('rate({i="1"}[2m])', 'label_replace(rate({job="a"}[2m]), "q", "1", "", "")',
                 'timestamp({job="a"})', 'sum_over_time({job="a"}[3m])'):
        for n in (1, 2):
            check(text, data, n, 120.0)


@st.composite
def spread_values(draw: st.DrawFn) -> list[Series]:
    """One sample per series with values whose variance rounds differently in another order."""
    value = st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from([0.1, 0.2, 0.3, 1e-9, 123456.789]),
                      st.sampled_from([math.nan, math.inf]))
    keys = draw(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 40)), min_size=1, max_size=30,
                         unique=True))
    return [("x", {"job": job, "i": str(i)}, [290.0], [draw(value)]) for job, i in keys]


@settings(max_examples=int(os.environ.get("WK_SHARD_EXAMPLES", "300")), deadline=None, phases=PHASES)
@given(data=spread_values(), n=st.sampled_from([1, 2, 3, 4]), op=st.sampled_from(["stddev", "stdvar"]),
       by=st.sampled_from(["", " by (job)"]), semantics=st.sampled_from(["prometheus3", "prometheus2"]))
def test_small_stddev_groups_merge_bit_for_bit(data: list[Series], n: int, op: str, by: str,
                                               semantics: Semantics) -> None:
    """promtool compares bits: a group of a few members is replayed at the merge in the single store's
    order (EXACT_VARIANCE_MEMBERS), not combined from per-partition moments (1 ulp off)."""
    text = f"{op}{by} (x)"
    single, parts = stores(data, n)
    e = normal(evaluate(parse(text, semantics), 300.0, single))
    g = normal(partitioned(text, 300.0, parts, semantics))
    assert [x[0] for x in e] == [x[0] for x in g]
    for a, b in zip(e, g, strict=True):
        assert a[1] == b[1] or (math.isnan(a[1]) and math.isnan(b[1])), (text, n, a, b)


def test_large_stddev_groups_still_merge_from_moments(monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond EXACT_VARIANCE_MEMBERS a partition ships moments, also beside partitions that shipped members."""
    monkeypatch.setattr(sharding, "EXACT_VARIANCE_MEMBERS", 4)
    data = [("x", {"job": "ab"[i % 2], "i": str(i)}, [290.0], [float(i % 7) + 0.1]) for i in range(14)]
    sizes = [sum(partition_of(name, labels, 3) == p for name, labels, _, _ in data) for p in range(3)]
    assert min(sizes) <= 4 < max(sizes)  # both kinds of partials meet at the merge
    for text in ("stddev(x)", "stdvar by (job) (x)"):
        check(text, data, 3, 300.0)
        check(text, data, 3, 300.0, "prometheus2")
