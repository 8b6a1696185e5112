"""The hot path's shortcuts give exactly what the contract path gives: orjson decoding into columns equals
pydantic + `columns_of`, bad input still gets the precise pydantic reason, and preformatted aggregate JSON
equals the `WindowAggregate` records."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from watchkeeper.core.sample_columns import columns_of
from watchkeeper.core.sample_decode import decode_columns
from watchkeeper.core.series_registry import SeriesRegistry
from watchkeeper.core.window_output import aggregate_messages, aggregate_records
from watchkeeper.core.windows import WindowEngine
from watchkeeper.schemas import WindowAggregate
from watchkeeper.schemas.codec import SchemaError, decode_sample_message

BATCH = {"v": 1, "source": "h1", "labels": {"host": "h1"}, "series": [
    {"name": "cpu", "labels": {"core": "0"}, "ts": [1.0, 2, 3.5], "values": [1, 2.5, -3.0]},
    {"name": "req_total", "labels": {"host": "other"}, "kind": "counter", "ts": [4.0], "values": [7.0]},
    {"name": "empty", "ts": [], "values": []},
]}


@pytest.mark.parametrize("message", [
    BATCH,
    {"v": 1, "name": "cpu", "labels": {"core": "1"}, "ts": 12, "value": 0.5, "kind": "counter"},
    {"v": 1, "source": "h", "series": [{"name": "x", "ts": [1.0], "values": [True]}]},  # lax: via pydantic
    {"v": 1, "source": "h", "series": [{"name": "x", "ts": ["2"], "values": [1]}]},
])
def test_fast_columns_equal_the_pydantic_path(message: dict[str, object]) -> None:
    raw = orjson.dumps(message)
    fast_reg, slow_reg = SeriesRegistry(), SeriesRegistry()
    fast = decode_columns(raw, fast_reg)
    slow = columns_of(decode_sample_message(raw), slow_reg)
    for name in ("series", "ts", "values", "counter"):
        assert getattr(fast, name).tolist() == getattr(slow, name).tolist()
        assert getattr(fast, name).dtype == getattr(slow, name).dtype
    assert fast_reg.labels == slow_reg.labels and fast_reg.kinds == slow_reg.kinds


@pytest.mark.parametrize(("message", "reason"), [
    (b"[1", "not JSON"),
    (b'{"v": 2, "series": []}', "unsupported schema version"),
    (b'{"v":1,"source":"h","series":[{"name":"x","ts":[1],"values":[]}]}', "ts has 1 points but values has 0"),
    (b'{"v":1,"source":"h","series":[{"name":"x","ts":[1],"values":["a"]}]}', "series.0.values.0"),
    (b'{"v":1,"source":"h","series":[{"name":"9x","ts":[1],"values":[1]}]}', "series.0.name"),
    (b'{"v":1,"source":"h","labels":{"__a":"b"},"series":[]}', "not a valid Prometheus label name"),
    (b'{"v":1,"source":"h","extra":1,"series":[]}', "extra: Extra inputs are not permitted"),
    (b'{"v":1,"name":"x","ts":-1,"value":1}', "ts must be a finite, non-negative"),
    (b'{"v":1,"name":"x","ts":1,"value":null}', "value"),
])
def test_bad_messages_get_the_contract_reason(message: bytes, reason: str) -> None:
    with pytest.raises(SchemaError) as err:
        decode_columns(message, SeriesRegistry())
    with pytest.raises(SchemaError) as want:
        decode_sample_message(message)
    assert str(err.value) == str(want.value)
    assert reason in str(err.value)


def test_known_series_with_a_bad_common_label_value_is_still_rejected() -> None:
    reg = SeriesRegistry()
    decode_columns(orjson.dumps(BATCH), reg)
    bad = {**BATCH, "labels": {"host": 5}}
    with pytest.raises(SchemaError, match=r"labels\.host"):
        decode_columns(orjson.dumps(bad), reg)


def test_preformatted_aggregates_equal_the_records() -> None:
    rng = np.random.default_rng(3)
    reg = SeriesRegistry()
    idx = [reg.index_of("m", {"s": str(i)}, "counter" if i % 3 == 0 else "gauge") for i in range(20)]
    eng = WindowEngine(reg)
    for t0 in range(0, 100, 10):
        n = 400
        values = rng.normal(0, 100, n).round(2)
        values[::17] = 0.0
        from watchkeeper.core.sample_columns import SampleColumns

        series = rng.choice(idx, n)
        eng.ingest(SampleColumns(series, t0 + rng.uniform(0, 10, n), values, series % 3 == 0))
    closed = eng.flush()
    closed.sum[3] = float("inf")  # a non-finite number takes the dict path
    messages = aggregate_messages(closed, reg)
    records = aggregate_records(closed, reg)
    assert len(messages) == len(records) == len(closed) > 100
    for (key, value), rec in zip(messages, records, strict=True):
        assert key == rec["series_id"].encode()
        assert orjson.loads(value) == orjson.loads(orjson.dumps(rec))
        if np.isfinite(rec["sum"]):
            WindowAggregate.model_validate_json(value)


def test_snapshot_restores_an_engine_that_closes_the_same_windows() -> None:
    from watchkeeper.core.sample_columns import SampleColumns

    rng = np.random.default_rng(5)
    reg = SeriesRegistry()
    idx = np.asarray([reg.index_of("m", {"s": str(i)}, "counter" if i % 2 else "gauge") for i in range(30)])

    def batch(t0: float) -> SampleColumns:
        series = rng.choice(idx, 300)
        return SampleColumns(series, t0 + rng.uniform(0, 12, 300), rng.normal(50, 20, 300).round(1),
                             series % 2 == 1)

    batches = [batch(t) for t in range(0, 120, 6)]
    whole = WindowEngine(reg, allowed_lateness=3)
    for b in batches[:10]:
        whole.ingest(b)
        whole.advance()
    data = whole.snapshot()
    other = SeriesRegistry()
    other.index_of("unrelated", {})  # dense indexes differ in the restoring process
    restored = WindowEngine.restore(data, other)
    assert restored.snapshot() != b"" and restored.open_windows == whole.open_windows
    assert restored.watermark(0) == whole.watermark(0) and restored.source_names == whole.source_names
    for b in batches[10:]:
        mapped = SampleColumns(np.asarray([other.index_of(reg.names[s], reg.labels[s]) for s in b.series]),
                               b.ts, b.values, b.counter)
        assert whole.ingest(b).tolist() == restored.ingest(mapped).tolist()
        a, r = aggregate_records(whole.advance(), reg), aggregate_records(restored.advance(), other)
        assert a == r
    assert aggregate_records(whole.flush(), reg) == aggregate_records(restored.flush(), other)


def test_snapshot_keeps_samples_still_waiting_to_be_applied() -> None:
    """Ingested samples wait in a pending buffer until a window closes; a snapshot taken then must hold
    them (a restart resumes after the offset that carried them: leaving them out lost whole windows)."""
    from watchkeeper.core.sample_columns import SampleColumns

    reg = SeriesRegistry()
    idx = np.asarray([reg.index_of("m", {"s": str(i)}) for i in range(5)])
    eng = WindowEngine(reg, width=10, allowed_lateness=0)
    eng.ingest(SampleColumns(idx[:1], np.asarray([0.5]), np.asarray([0.0]), np.zeros(1, dtype=bool)))
    eng.advance()
    eng.ingest(SampleColumns(idx, np.full(5, 1.0), np.arange(5.0), np.zeros(5, dtype=bool)))
    assert len(eng.advance()) == 0  # the watermark did not move past a window end: the samples stay pending
    restored = WindowEngine.restore(eng.snapshot(), reg)
    closing = SampleColumns(idx[:1], np.asarray([20.0]), np.asarray([9.0]), np.zeros(1, dtype=bool))
    restored.ingest(closing)
    records = aggregate_records(restored.advance(), reg)
    expected = [(0.0, 2, 0.0)] + [(0.0, 1, float(v)) for v in range(1, 5)]
    assert sorted((r["start"], r["count"], r["max"]) for r in records) == sorted(expected)


def test_runs_of_a_formatted_int_column_equal_joining_each_run() -> None:
    from watchkeeper.core.window_output import _runs

    rng = np.random.default_rng(1)
    x = rng.integers(-(10**12), 10**12, 5000) // rng.integers(1, 10**12, 5000)
    x[::7] = 0
    x[::11] = np.iinfo(np.int64).max // 3
    lo = np.sort(rng.integers(0, 5000, 300))
    hi = np.minimum(lo + rng.integers(0, 20, 300), 5000)
    assert _runs(x, lo, hi) == [",".join(str(v) for v in x[a:b].tolist()).encode()
                                for a, b in zip(lo, hi, strict=True)]


def _spelled_batch(ts: list[list[object]], values: list[list[object]]) -> dict[str, object]:
    """A batch whose blocks spell all five fields (as `SeriesBlock.model_dump` writes them)."""
    return {"v": 1, "source": "h", "labels": {"host": "h"}, "series": [
        {"name": "m_total" if i % 2 else "m", "labels": {"i": str(i)}, "kind": "counter" if i % 2 else "gauge",
         "ts": t, "values": v} for i, (t, v) in enumerate(zip(ts, values, strict=True))]}


@pytest.mark.parametrize(("ts", "values"), [
    ([[1.0, 2.0], [1.0, 2], [3, 4]], [[1.5, 2.0], [3, 4], [5, 6.25]]),  # equal lengths: one 2-D array
    ([[1.0], [1.0, 2.0, 3.0], []], [[1], [3.0, 4.0, 5.0], []]),  # ragged
    ([[], [], []], [[], [], []]),
    ([[1.0, 2], [1, 2.0], [1.0, 2.0]], [[1.0, 2.0], [3, 4], [5, 6.25]]),  # the same times: one column
    ([[5.0], [5.0], [5.0]], [[1.0], [2.0], [3.0]]),
])
def test_known_blocks_decode_like_the_contract(ts: list[list[object]], values: list[list[object]]) -> None:
    """The second message of known, fully spelled blocks takes the column-wise shortcut; same columns."""
    fast_reg, slow_reg = SeriesRegistry(), SeriesRegistry()
    decode_columns(orjson.dumps(_spelled_batch([[1.0]] * 3, [[1.0]] * 3)), fast_reg)  # registers the spellings
    raw = orjson.dumps(_spelled_batch(ts, values))
    fast, slow = decode_columns(raw, fast_reg), columns_of(decode_sample_message(raw), slow_reg)
    for name in ("series", "ts", "values", "counter"):
        assert getattr(fast, name).tolist() == getattr(slow, name).tolist()
        assert getattr(fast, name).dtype == getattr(slow, name).dtype


@pytest.mark.parametrize(("ts", "values", "reason"), [
    ([[1.0], [2.0], [3.0]], [[1.0], ["a"], [2.0]], "series.1.values.0"),
    ([[1.0], [2.0], [3.0]], [[1.0], [None], [2.0]], "series.1.values.0"),
    ([[1.0], 2.0, [3.0]], [[1.0], [2.0], [2.0]], "series.1.ts"),
    ([[1.0], [2.0], [3.0]], [[1.0], [2.0, 3.0], [2.0]], "ts has 1 points but values has 2"),
    ([[1.0], [[2.0]], [3.0]], [[1.0], [2.0], [2.0]], "series.1.ts.0"),
])
def test_known_blocks_with_bad_points_get_the_contract_reason(ts: list[object], values: list[object],
                                                              reason: str) -> None:
    reg = SeriesRegistry()
    decode_columns(orjson.dumps(_spelled_batch([[1.0]] * 3, [[1.0]] * 3)), reg)
    raw = orjson.dumps(_spelled_batch(ts, values))  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match=reason):
        decode_columns(raw, reg)


@pytest.mark.parametrize("shuffle", [False, True])
def test_series_time_order_is_lexsort(shuffle: bool) -> None:
    """The cheap stable sort by series gives lexsort's order for in-order input, and falls back when not."""
    from watchkeeper.core.windows import _series_time_order

    rng = np.random.default_rng(2)
    series = np.tile(np.repeat(np.arange(30), 4), 5)
    ts = np.repeat(np.arange(5.0), 120) + np.tile(np.repeat([0.0, 0.0, 1.0, 2.0], 1), 150) * 0.1  # ties
    if shuffle:
        perm = rng.permutation(len(ts))
        series, ts = series[perm], ts[perm]
    assert _series_time_order(series, ts).tolist() == np.lexsort((ts, series)).tolist()


def test_preformatted_aggregates_of_positive_values_equal_the_records() -> None:
    """The common case (no negative values, no zeros: one constant sketch tail) formats like the records."""
    from watchkeeper.core.sample_columns import SampleColumns

    rng = np.random.default_rng(4)
    reg = SeriesRegistry()
    idx = np.asarray([reg.index_of("m", {"s": str(i)}) for i in range(10)])
    eng = WindowEngine(reg)
    series = rng.choice(idx, 500)
    eng.ingest(SampleColumns(series, rng.uniform(0, 50, 500), rng.lognormal(2, 1, 500), np.zeros(500, dtype=bool)))
    closed = eng.flush()
    messages, records = aggregate_messages(closed, reg), aggregate_records(closed, reg)
    assert len(messages) == len(records) == 50
    for (key, value), rec in zip(messages, records, strict=True):
        assert key == rec["series_id"].encode() and orjson.loads(value) == orjson.loads(orjson.dumps(rec))
        WindowAggregate.model_validate_json(value)
