"""Decoded topic messages as Arrow tables, one per ClickHouse table, so inserts are columnar."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from watchkeeper.core.sample_rejects import MAX_TS, MIN_TS
from watchkeeper.schemas.samples import SampleBatch
from watchkeeper.schemas.series_id import series_id

_TS = pa.timestamp("ms", tz="UTC")
_LABELS = pa.map_(pa.string(), pa.string())


def _ms(seconds: Sequence[float] | np.ndarray) -> pa.Array:
    return pa.array(np.round(np.asarray(seconds, dtype=np.float64) * 1000).astype(np.int64), type=pa.int64()).cast(_TS)


def samples_table(batches: Sequence[SampleBatch]) -> pa.Table:
    """The points of `batches`, except those whose time is outside `core.sample_rejects`' range (not finite,
    before 1970 or after 2262): DateTime64 would store them as garbage (1e300 became 9999-12-31), and the
    window worker dead-letters exactly these points with the reason `bad_timestamp`."""
    sids: list[int] = []
    names: list[str] = []
    labels: list[list[tuple[str, str]]] = []
    kinds: list[str] = []
    lengths: list[int] = []
    ts_parts: list[list[float]] = []
    value_parts: list[list[float]] = []
    for batch in batches:
        for block in batch.series:
            merged = {**batch.labels, **block.labels}
            sids.append(series_id(block.name, merged))
            names.append(block.name)
            labels.append(sorted(merged.items()))
            kinds.append(block.kind)
            lengths.append(len(block.ts))
            ts_parts.append(block.ts)
            value_parts.append(block.values)
    n = np.asarray(lengths, dtype=np.int64)
    take = np.repeat(np.arange(len(n)), n)
    ts = np.fromiter((t for p in ts_parts for t in p), dtype=np.float64, count=int(n.sum()))
    values = np.fromiter((v for p in value_parts for v in p), dtype=np.float64, count=int(n.sum()))
    per_block = pa.table({
        "series_id": pa.array(sids, type=pa.uint64()),
        "name": pa.array(names, type=pa.string()),
        "labels": pa.array(labels, type=_LABELS),
        "kind": pa.array(kinds, type=pa.string()),
    })
    sane = (ts >= MIN_TS) & (ts <= MAX_TS)
    if not sane.all():
        take, ts, values = take[sane], ts[sane], values[sane]
    expanded = per_block.take(pa.array(take))
    return expanded.append_column("ts", _ms(ts)).append_column("value", pa.array(values, type=pa.float64()))


def aggregates_table(records: Sequence[dict[str, Any]]) -> pa.Table:
    def col(name: str) -> list[Any]:
        return [r[name] for r in records]

    return pa.table({
        "series_id": pa.array([int(r["series_id"], 16) for r in records], type=pa.uint64()),
        "name": pa.array(col("name"), type=pa.string()),
        "labels": pa.array([sorted(r["labels"].items()) for r in records], type=_LABELS),
        "kind": pa.array([r.get("kind", "gauge") for r in records], type=pa.string()),  # optional in the model
        "start": _ms(col("start")),
        "end": _ms(col("end")),
        "count": pa.array(col("count"), type=pa.uint64()),
        **{k: pa.array(col(k), type=pa.float64()) for k in ("sum", "min", "max", "last")},
        "increase": pa.array([r.get("increase", 0.0) for r in records], type=pa.float64()),  # optional
        **{k: pa.array(col(k), type=pa.float64()) for k in ("p50", "p90", "p95", "p99")},
        "sketch": pa.array([orjson.dumps(r["sketch"]).decode() for r in records], type=pa.string()),
    })


def alerts_table(records: Sequence[dict[str, Any]]) -> pa.Table:
    ends = [r.get("ends_at") for r in records]
    ends_ms = pa.array([None if e is None else round(e * 1000) for e in ends], type=pa.int64()).cast(_TS)
    return pa.table({
        "fingerprint": pa.array([r["fingerprint"] for r in records], type=pa.string()),
        "rule": pa.array([r["rule"] for r in records], type=pa.string()),
        "state": pa.array([r["state"] for r in records], type=pa.string()),
        "severity": pa.array([r.get("severity", "") for r in records], type=pa.string()),
        "labels": pa.array([sorted(r.get("labels", {}).items()) for r in records], type=_LABELS),
        "annotations": pa.array([sorted(r.get("annotations", {}).items()) for r in records], type=_LABELS),
        "value": pa.array([float(r.get("value", 0.0)) for r in records], type=pa.float64()),
        "starts_at": _ms([r["starts_at"] for r in records]),
        "ends_at": ends_ms,
        "event_time": _ms([r["event_time"] for r in records]),
        "source": pa.array([r.get("source", "rule") for r in records], type=pa.string()),
    })


def notifications_table(records: Sequence[dict[str, Any]]) -> pa.Table:
    return pa.table({
        "notification_id": pa.array([r["notification_id"] for r in records], type=pa.string()),
        "receiver": pa.array([r["receiver"] for r in records], type=pa.string()),
        "integration": pa.array([r["integration"] for r in records], type=pa.string()),
        "group_key": pa.array([r["group_key"] for r in records], type=pa.string()),
        "status": pa.array([r["status"] for r in records], type=pa.string()),
        "attempt": pa.array([r.get("attempt", 1) for r in records], type=pa.uint32()),
        "error": pa.array([r.get("error", "") for r in records], type=pa.string()),
        "latency_ms": pa.array([float(r.get("latency_ms", 0.0)) for r in records], type=pa.float64()),
        "time": _ms([r["time"] for r in records]),
        "alerts": pa.array([r.get("alerts", []) for r in records], type=pa.list_(pa.string())),
        "firing": pa.array([r.get("firing", 0) for r in records], type=pa.uint32()),
        "resolved": pa.array([r.get("resolved", 0) for r in records], type=pa.uint32()),
    })
