"""Given samples, expect exactly these windows: assignment, watermark, lateness, counters, sketches."""

from __future__ import annotations

import numpy as np
from ddsketch import DDSketch
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.core.ddsketch_bins import Bins, codes_of
from watchkeeper.core.sample_columns import SampleColumns, columns_of
from watchkeeper.core.series_registry import SeriesRegistry
from watchkeeper.core.window_output import aggregate_records
from watchkeeper.core.windows import WindowEngine
from watchkeeper.schemas import SampleBatch, SeriesBlock, WindowAggregate


def cols(series: list[int], ts: list[float], values: list[float], counter: bool = False) -> SampleColumns:
    return SampleColumns(
        np.asarray(series, dtype=np.int64), np.asarray(ts, dtype=float), np.asarray(values, dtype=float),
        np.full(len(ts), counter),
    )


def test_windows_are_epoch_aligned_and_close_on_the_watermark() -> None:
    reg = SeriesRegistry()
    s = reg.index_of("cpu", {"host": "a"})
    eng = WindowEngine(reg, width=10, allowed_lateness=5)
    eng.ingest(cols([s] * 3, [1003.0, 1007.5, 1012.0], [1.0, 3.0, 2.0]))
    # max ts 1012 - lateness 5 = watermark 1007: window [1000, 1010) still open
    assert len(eng.advance()) == 0
    eng.ingest(cols([s], [1015.0], [4.0]))  # watermark 1010: closes [1000, 1010)
    closed = eng.advance()
    assert closed.start.tolist() == [1000.0] and closed.end.tolist() == [1010.0]
    assert closed.count.tolist() == [2]
    assert closed.sum.tolist() == [4.0] and closed.min.tolist() == [1.0] and closed.max.tolist() == [3.0]
    assert closed.last.tolist() == [3.0]
    assert eng.open_windows == 1


def test_late_sample_is_returned_not_applied() -> None:
    reg = SeriesRegistry()
    s = reg.index_of("cpu", {})
    eng = WindowEngine(reg, width=10, allowed_lateness=5)
    eng.ingest(cols([s, s], [100.0, 121.0], [1.0, 1.0]))
    assert eng.advance().start.tolist() == [100.0]
    late = eng.ingest(cols([s, s, s], [105.0, 109.9, 118.0], [7.0, 7.0, 7.0]))
    assert late.tolist() == [True, True, False]
    assert eng.late_samples == 2
    rest = eng.flush()
    assert sorted(rest.start.tolist()) == [110.0, 120.0]
    assert rest.count.sum() == 2  # 118 and 121


def test_within_lateness_out_of_order_sample_is_counted() -> None:
    reg = SeriesRegistry()
    s = reg.index_of("cpu", {})
    eng = WindowEngine(reg, width=10, allowed_lateness=5)
    eng.ingest(cols([s], [112.0], [1.0]))  # watermark 107: [100,110) still open
    assert eng.ingest(cols([s], [108.0], [5.0])).tolist() == [False]
    closed = eng.flush()
    assert dict(zip(closed.start.tolist(), closed.count.tolist(), strict=True)) == {100.0: 1, 110.0: 1}


def test_counter_increase_is_reset_aware_and_crosses_window_boundaries() -> None:
    reg = SeriesRegistry()
    c = reg.index_of("requests_total", {}, "counter")
    eng = WindowEngine(reg, width=10, allowed_lateness=0)
    # 5 -> 8 (+3) | 10 (+2, attributed to the second window), reset to 1 (+1), 4 (+3)
    eng.ingest(cols([c] * 2, [1.0, 5.0], [5.0, 8.0], counter=True))
    eng.ingest(cols([c] * 3, [11.0, 13.0, 17.0], [10.0, 1.0, 4.0], counter=True))
    closed = eng.flush()
    assert closed.increase.tolist() == [3.0, 6.0]


def test_gauge_has_no_increase() -> None:
    reg = SeriesRegistry()
    g = reg.index_of("temp", {})
    eng = WindowEngine(reg)
    eng.ingest(cols([g] * 3, [1.0, 2.0, 3.0], [5.0, 1.0, 9.0]))
    assert eng.flush().increase.tolist() == [0.0]


def test_output_order_is_deterministic_and_valid_wire_shape() -> None:
    reg = SeriesRegistry()
    batch = SampleBatch(
        source="h",
        labels={"host": "h"},
        series=[
            SeriesBlock(name="b", ts=[1.0, 11.0], values=[1.0, 2.0]),
            SeriesBlock(name="a", labels={"x": "1"}, kind="counter", ts=[2.0, 12.0], values=[1.0, 3.0]),
        ],
    )
    eng = WindowEngine(reg)
    eng.ingest(columns_of(batch, reg))
    recs = aggregate_records(eng.flush(), reg)
    models = [WindowAggregate.model_validate(r) for r in recs]
    assert [m.start for m in models] == [0.0, 0.0, 10.0, 10.0]
    assert [m.series_id for m in models[:2]] == sorted(m.series_id for m in models[:2])
    assert {m.name: m.labels for m in models} == {"a": {"host": "h", "x": "1"}, "b": {"host": "h"}}
    assert models[-1].kind in ("gauge", "counter")


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).filter(lambda x: x == 0 or abs(x) > 1e-6),
        min_size=1, max_size=400,
    ),
    q=st.sampled_from([0.0, 0.5, 0.9, 0.95, 0.99, 1.0]),
)
def test_sketch_quantile_within_one_percent_of_exact_rank_value(values: list[float], q: float) -> None:
    reg = SeriesRegistry()
    s = reg.index_of("x", {})
    eng = WindowEngine(reg, width=1e9, quantiles=(q,))
    eng.ingest(cols([s] * len(values), [float(i) for i in range(len(values))], values))
    got = float(eng.flush().quantiles[q][0])
    exact = sorted(values)[int(np.floor(q * (len(values) - 1)))]
    assert abs(got - exact) <= 0.01 * abs(exact) + 1e-12
    ref = DDSketch(0.01)
    for v in values:
        ref.add(v)
    expected = min(max(ref.get_quantile_value(q), min(values)), max(values))
    assert got == expected or abs(got - expected) <= 1e-9 * abs(expected)


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(st.tuples(st.integers(0, 3), st.floats(0, 100), st.floats(-1e3, 1e3)), min_size=1, max_size=200),
    split=st.integers(1, 10),
)
def test_merging_adjacent_windows_equals_aggregating_their_union(
    data: list[tuple[int, float, float]], split: int
) -> None:
    """Windows of width w merged pairwise give what width 2w gives: sketch bins add, counts add."""
    reg = SeriesRegistry()
    ids = [reg.index_of("m", {"s": str(i)}) for i in range(4)]
    fine, coarse = WindowEngine(reg, width=10), WindowEngine(reg, width=20)
    for chunk in (data[:split], data[split:]):
        if chunk:
            c = cols([ids[s] for s, _, _ in chunk], [t for _, t, _ in chunk], [v for _, _, v in chunk])
            fine.ingest(c)
            coarse.ingest(c)
    f, c = fine.flush(), coarse.flush()
    merged: dict[tuple[int, float], dict[str, object]] = {}
    for i in range(len(f)):
        key = (int(f.series[i]), float(f.start[i] // 20 * 20))
        m = merged.setdefault(key, {"count": 0, "sum": 0.0, "min": np.inf, "max": -np.inf, "bins": {}})
        m["count"] += int(f.count[i])  # type: ignore[operator]
        m["sum"] += float(f.sum[i])  # type: ignore[operator]
        m["min"] = min(m["min"], float(f.min[i]))  # type: ignore[call-overload]
        m["max"] = max(m["max"], float(f.max[i]))  # type: ignore[call-overload]
        bins: dict[int, int] = m["bins"]  # type: ignore[assignment]
        for code, n in zip(f.bin_codes[f.bin_offsets[i]:f.bin_offsets[i + 1]].tolist(),
                           f.bin_counts[f.bin_offsets[i]:f.bin_offsets[i + 1]].tolist(), strict=True):
            bins[code] = bins.get(code, 0) + n
    assert len(merged) == len(c)
    for i in range(len(c)):
        m = merged[(int(c.series[i]), float(c.start[i]))]
        assert m["count"] == c.count[i] and m["min"] == c.min[i] and m["max"] == c.max[i]
        assert abs(m["sum"] - c.sum[i]) <= 1e-9 * max(1.0, abs(c.sum[i]))  # type: ignore[operator]
        own = dict(zip(c.bin_codes[c.bin_offsets[i]:c.bin_offsets[i + 1]].tolist(),
                       c.bin_counts[c.bin_offsets[i]:c.bin_offsets[i + 1]].tolist(), strict=True))
        assert own == m["bins"]


def test_bins_match_the_reference_package() -> None:
    rng = np.random.default_rng(7)
    v = np.concatenate([rng.lognormal(0, 3, 2000), -rng.lognormal(0, 2, 500), np.zeros(5)])
    codes, counts = np.unique(codes_of(v), return_counts=True)
    bins = Bins.from_codes(codes, counts)
    ref = DDSketch(0.01)
    for x in v:
        ref.add(float(x))
    for q in (0.0, 0.1, 0.5, 0.9, 0.99, 1.0):
        assert bins.quantile(q) == ref.get_quantile_value(q)
