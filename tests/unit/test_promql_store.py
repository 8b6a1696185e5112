"""SeriesStore: given appended points, expect these windows, markers and prunes."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from watchkeeper.core.promql.series_store import SeriesStore
from watchkeeper.core.promql.values import STALE_NAN, Matcher, is_stale, stale_mask


def _store() -> SeriesStore:
    store = SeriesStore()
    store.append("up", {"job": "a"}, np.array([0.0, 15.0, 30.0]), np.array([1.0, 1.0, 0.0]))
    store.append("up", {"job": "b", "env": "prod"}, np.array([0.0, 15.0]), np.array([1.0, 1.0]))
    store.append("down", {"job": "a"}, np.array([0.0]), np.array([5.0]))
    return store


def test_select_window_is_left_open_right_closed() -> None:
    store = _store()
    [series] = store.select([Matcher("__name__", "=", "up"), Matcher("job", "=", "a")], 0.0, 30.0)
    assert series.labels == {"__name__": "up", "job": "a"}
    assert series.ts.tolist() == [15.0, 30.0]
    assert series.values.tolist() == [1.0, 0.0]


def test_matchers_regex_negative_and_missing_label() -> None:
    store = _store()

    def names(*matchers: Matcher) -> list[dict[str, str]]:
        return [s.labels for s in store.select(list(matchers), -1.0, 100.0)]

    assert names(Matcher("__name__", "=~", "up|down"), Matcher("job", "=", "a")) == [
        {"__name__": "down", "job": "a"},
        {"__name__": "up", "job": "a"},
    ]
    assert names(Matcher("__name__", "=", "up"), Matcher("env", "=", "")) == [{"__name__": "up", "job": "a"}]
    assert names(Matcher("__name__", "=", "up"), Matcher("env", "!~", "pro")) == names(Matcher("__name__", "=", "up"))
    assert names(Matcher("job", "!=", "a")) == [{"__name__": "up", "env": "prod", "job": "b"}]


def test_out_of_order_and_duplicate_points_are_dropped() -> None:
    store = SeriesStore()
    store.append_one("m", {}, 10.0, 1.0)
    store.append_one("m", {}, 5.0, 2.0)
    store.append_one("m", {}, 10.0, 3.0)
    store.append("m", {}, np.array([12.0, 20.0, 15.0, 20.0, 8.0, 21.0]), np.array([4.0, 5.0, 6.0, 7.0, 8.0, 9.0]))
    [series] = store.select([Matcher("__name__", "=", "m")], 0.0, 100.0)
    assert series.ts.tolist() == [10.0, 12.0, 20.0, 21.0]
    assert series.values.tolist() == [1.0, 4.0, 5.0, 9.0]


def test_stale_marker_is_kept_as_a_distinct_nan() -> None:
    store = SeriesStore()
    store.append_one("m", {"a": "1"}, 0.0, float("nan"))
    store.mark_stale("m", {"a": "1"}, 60.0)
    [series] = store.select([Matcher("__name__", "=", "m")], -1.0, 60.0)
    assert stale_mask(series.values).tolist() == [False, True]
    assert is_stale(STALE_NAN) and not is_stale(float("nan"))


def test_prune_forgets_old_points_and_empty_series() -> None:
    store = _store()
    assert store.series_count() == 3
    store.prune(15.0)
    assert store.series_count() == 2
    remaining = store.select([Matcher("__name__", "=", "up")], -1.0, 100.0)
    assert [s.ts.tolist() for s in remaining] == [[15.0], [15.0, 30.0]]


def test_retention_bounds_memory_on_an_endless_stream() -> None:
    store = SeriesStore(retention=600.0)
    for start in range(0, 100_000, 1000):
        ts = np.arange(start, start + 1000, dtype=np.float64)
        store.append("m", {}, ts, ts)
    [series] = store.select([Matcher("__name__", "=", "m")], 98_000.0, 99_999.0)
    assert series.ts[-1] == 99_999.0
    assert len(series.ts) >= 600
    buffer = next(iter(store._series.values()))
    assert len(buffer.ts) < 5000


@given(
    points=st.lists(st.tuples(st.integers(0, 10_000), st.floats(allow_nan=False)), max_size=60),
    cuts=st.lists(st.integers(0, 60), max_size=5),
)
def test_appending_in_batches_equals_appending_one_by_one(points: list[tuple[int, float]], cuts: list[int]) -> None:
    """Whatever the batching, a series keeps exactly the points newer than its previous last one."""
    one_by_one, batched = SeriesStore(), SeriesStore()
    for t, v in points:
        one_by_one.append_one("m", {"a": "1"}, float(t), v)
    bounds = [0, *sorted(c for c in cuts if c <= len(points)), len(points)]
    for lo, hi in itertools.pairwise(bounds):
        chunk = points[lo:hi]
        batched.append("m", {"a": "1"}, np.array([float(t) for t, _ in chunk]), np.array([v for _, v in chunk]))
    expected = one_by_one.select([Matcher("__name__", "=", "m")], -1.0, 1e9)
    got = batched.select([Matcher("__name__", "=", "m")], -1.0, 1e9)
    assert [s.ts.tolist() for s in got] == [s.ts.tolist() for s in expected]
    assert [s.values.tolist() for s in got] == [s.values.tolist() for s in expected]
