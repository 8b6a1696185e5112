"""Partitioned evaluation (core.promql.sharding) equals the single-store evaluation.

Given series split over N partitions by a hash of their labels, each partition's partials (through
JSON), merged and evaluated with the merge stage's empty store, give what `evaluate` gives over one
store holding every series: the same samples (sum/avg/stddev/stdvar within float rounding) or the
same error.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
import orjson
import pytest

from watchkeeper.core.promql import sharding
from watchkeeper.core.promql.evaluator import PromQLError, Semantics, evaluate, parse
from watchkeeper.core.promql.series_store import SeriesStore
from watchkeeper.core.promql.values import Scalar, SeriesData, VectorSample, labels_key

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
