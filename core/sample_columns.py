"""A decoded `SampleBatch` as flat numpy columns: the shape the window engine works on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from watchkeeper.core.series_registry import SeriesRegistry
from watchkeeper.schemas.samples import SampleBatch


@dataclass(frozen=True)
class SampleColumns:
    series: np.ndarray  # int64 dense series index (SeriesRegistry)
    ts: np.ndarray  # float64 event time, epoch seconds
    values: np.ndarray  # float64
    counter: np.ndarray  # bool, the point's series is a counter

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, mask_or_index: np.ndarray) -> SampleColumns:
        return SampleColumns(
            self.series[mask_or_index], self.ts[mask_or_index], self.values[mask_or_index],
            self.counter[mask_or_index],
        )


def columns_of(batch: SampleBatch, registry: SeriesRegistry) -> SampleColumns:
    """Flatten a batch: one registry lookup per series block, then whole-array work per column."""
    common = batch.labels
    idx: list[int] = []
    lengths: list[int] = []
    is_counter: list[bool] = []
    ts_parts: list[list[float]] = []
    value_parts: list[list[float]] = []
    for block in batch.series:
        labels = {**common, **block.labels} if common else block.labels
        idx.append(registry.index_of(block.name, labels, block.kind))
        lengths.append(len(block.ts))
        is_counter.append(block.kind == "counter")
        ts_parts.append(block.ts)
        value_parts.append(block.values)
    n = np.asarray(lengths, dtype=np.int64)
    return SampleColumns(
        series=np.repeat(np.asarray(idx, dtype=np.int64), n),
        ts=np.fromiter((t for part in ts_parts for t in part), dtype=np.float64, count=int(n.sum())),
        values=np.fromiter((v for part in value_parts for v in part), dtype=np.float64, count=int(n.sum())),
        counter=np.repeat(np.asarray(is_counter, dtype=bool), n),
    )
