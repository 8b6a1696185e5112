"""Split a `SampleBatch` into batches whose encoded size fits one Kafka message.

A batch larger than the broker takes is refused forever, and the spool drains in order: one such batch
would stop everything spooled behind it. So producers split before they spool (series apart first, then a
series' points), and the sender splits again whatever the broker still refuses as too large.
"""

from __future__ import annotations

import math
from itertools import pairwise

from watchkeeper.schemas.codec import encode
from watchkeeper.schemas.samples import SampleBatch, SeriesBlock


def split_batch(batch: SampleBatch, max_bytes: int) -> list[tuple[SampleBatch, bytes]]:
    """`batch` as pieces with their encodings, each at most `max_bytes` where possible, in the original order.

    Only a single point whose own encoding is larger than `max_bytes` (a series with huge labels) can come
    back over the limit; the caller decides what to do with it. Pieces keep `source` and common `labels`.
    """
    value = encode(batch)
    if len(value) <= max_bytes:
        return [(batch, value)]
    parts = max(2, math.ceil(len(value) / max_bytes * 1.1))
    if len(batch.series) > 1:
        pieces = [_with_series(batch, chunk) for chunk in _chunks(batch.series, parts)]
    elif batch.series and len(batch.series[0].ts) > 1:
        block = batch.series[0]
        bounds = _bounds(len(block.ts), parts)
        pieces = [_with_series(batch, [_slice(block, lo, hi)]) for lo, hi in bounds]
    else:
        return [(batch, value)]
    out: list[tuple[SampleBatch, bytes]] = []
    for piece in pieces:
        out += split_batch(piece, max_bytes)
    return out


def _bounds(n: int, parts: int) -> list[tuple[int, int]]:
    parts = min(parts, n)
    edges = [n * i // parts for i in range(parts + 1)]
    return [(lo, hi) for lo, hi in pairwise(edges) if hi > lo]


def _chunks(series: list[SeriesBlock], parts: int) -> list[list[SeriesBlock]]:
    return [series[lo:hi] for lo, hi in _bounds(len(series), parts)]


def _with_series(batch: SampleBatch, series: list[SeriesBlock]) -> SampleBatch:
    # Already validated: the pieces are parts of a valid batch, so they are built without validating again.
    return SampleBatch.model_construct(v=1, source=batch.source, labels=batch.labels, series=series)


def _slice(block: SeriesBlock, lo: int, hi: int) -> SeriesBlock:
    return SeriesBlock.model_construct(name=block.name, labels=block.labels, kind=block.kind,
                                       ts=block.ts[lo:hi], values=block.values[lo:hi])
