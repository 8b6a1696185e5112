"""Work shared between rules, and the kernels' unmasked fast paths, never change a result.

- SeriesStore.memo: given a value remembered for a metric name, expect it served until a series of that
  name changes (an append, a staleness marker, a prune), and never after; bounded in size.
- The evaluator: two rules reading one selector at one tick share it; a point appended into the window
  afterwards (a late sample, a recording rule's output) is seen by the next evaluation.
- Range kernels: series packed together (shorter rows masked) give exactly the floats each series gives
  packed alone (every column full, the unmasked path).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchkeeper.core.promql import range_kernels as kernels
from watchkeeper.core.promql import series_store
from watchkeeper.core.promql.evaluator import evaluate, parse
from watchkeeper.core.promql.series_store import SeriesStore
from watchkeeper.core.promql.values import VectorSample


def _counting(store: SeriesStore, name: str | None, key: str, calls: list[int]) -> int:
    def make() -> tuple[int, int]:
        calls.append(1)
        return len(calls), 1

    return store.memo(name, key, make)


def test_memo_serves_a_value_until_its_metric_changes() -> None:
    store = SeriesStore()
    store.append("up", {"job": "a"}, np.array([0.0, 10.0]), np.array([1.0, 1.0]))
    calls: list[int] = []
    assert _counting(store, "up", "k", calls) == 1
    assert _counting(store, "up", "k", calls) == 1  # remembered
    store.append_one("down", {"job": "a"}, 20.0, 0.0)
    assert _counting(store, "up", "k", calls) == 1  # another name changed: still valid
    assert _counting(store, None, "any", calls) == 2
    store.append_one("down", {"job": "a"}, 30.0, 0.0)
    assert _counting(store, None, "any", calls) == 3  # a selector without a name sees every change
    store.append_one("up", {"job": "a"}, 20.0, 1.0)
    assert _counting(store, "up", "k", calls) == 4
    store.mark_stale("up", {"job": "a"}, 30.0)
    assert _counting(store, "up", "k", calls) == 5
    store.prune(5.0)
    assert _counting(store, "up", "k", calls) == 6


def test_memo_drops_its_oldest_entries_beyond_its_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(series_store, "MEMO_POINTS", 10)
    store = SeriesStore()
    made: list[str] = []

    def entry(key: str, points: int) -> str:
        def make() -> tuple[str, int]:
            made.append(key)
            return key, points

        return store.memo("m", key, make)

    entry("a", 4)
    entry("b", 4)
    entry("c", 4)  # 12 points: "a" goes
    entry("b", 4)
    entry("a", 4)
    assert made == ["a", "b", "c", "a"]


def _values(result: object) -> list[tuple[tuple[tuple[str, str], ...], float]]:
    assert isinstance(result, list)
    return sorted((tuple(sorted(s.labels.items())), s.value) for s in result if isinstance(s, VectorSample))


def test_rules_sharing_a_selector_see_points_appended_into_the_window_afterwards() -> None:
    store = SeriesStore()
    ts = np.arange(0.0, 300.0, 10.0)
    for host, slope in (("a", 1.0), ("b", 2.0)):
        store.append("requests_total", {"host": host}, ts, ts * slope)
    rate = parse("rate(requests_total[5m])")
    total = parse("sum(rate(requests_total[5m]))")
    first = _values(evaluate(rate, 300.0, store))
    assert first == [((("host", "a"),), pytest.approx(1.0)), ((("host", "b"),), pytest.approx(2.0))]
    assert _values(evaluate(total, 300.0, store)) == [((), pytest.approx(3.0))]
    assert _values(evaluate(rate, 300.0, store)) == first  # served from the memo: the same values
    # A point at the tick itself arrives afterwards (a late sample): the next evaluation must see it
    store.append_one("requests_total", {"host": "a"}, 300.0, 900.0)
    changed = _values(evaluate(rate, 300.0, store))
    assert changed[0][1] > 2.0 and changed[1] == first[1]
    assert _values(evaluate(total, 300.0, store))[0][1] == pytest.approx(changed[0][1] + changed[1][1])


def test_an_instant_selector_shared_by_rules_sees_a_new_series() -> None:
    store = SeriesStore()
    store.append_one("up", {"job": "a"}, 10.0, 1.0)
    count = parse("count(up)")
    assert _values(evaluate(count, 20.0, store)) == [((), 1.0)]
    store.append_one("up", {"job": "b"}, 15.0, 1.0)
    assert _values(evaluate(count, 20.0, store)) == [((), 2.0)]


_windows = st.lists(
    st.lists(st.tuples(st.integers(1, 20_000), st.floats(-1e6, 1e6)), min_size=1, max_size=25),
    min_size=1, max_size=6)


@given(_windows)
def test_kernels_packed_together_equal_each_series_alone(windows: list[list[tuple[int, float]]]) -> None:
    ts_list, value_list = [], []
    for points in windows:
        by_time = dict(sorted(points))  # one value per time, ascending
        ts_list.append(np.array(list(by_time), dtype=np.float64) / 1000.0)
        value_list.append(np.array(list(by_time.values()), dtype=np.float64))
    together = kernels.Packed.of(ts_list, value_list)

    def each(p: kernels.Packed) -> list[np.ndarray]:
        slope, intercept = kernels.linear_regression(p, p.ts[:, 0])
        rate, _ = kernels.extrapolated_rate(p, 0, 25_000, 25.0, is_counter=True, is_rate=True)
        return [slope, intercept, rate, kernels.sum_over_time(p), kernels.avg_over_time(p),
                kernels.variance_over_time(p)]

    packed = each(together)
    for i, (ts, values) in enumerate(zip(ts_list, value_list, strict=True)):
        alone = each(kernels.Packed.of([ts], [values]))
        for got, want in zip(packed, alone, strict=True):
            assert got[i] == want[0] or (math.isnan(got[i]) and math.isnan(want[0])), (i, got[i], want[0])
