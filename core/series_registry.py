"""Dense indexes for series, so per-series state lives in numpy arrays rather than dicts of objects.

Bounded: at most `max_series` series are held; a new series beyond that is not added but gets a negative
index (-1 - its position in `refused`, which names it) that the window engine refuses with the reason
`series_limit`, so that a flood of new series costs a dead letter each instead of the worker's memory.
Series no engine holds state for any more are released (`release`) and their indexes reused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson

from watchkeeper.schemas.series_id import format_series_id, series_id

DEFAULT_MAX_SERIES = 1_000_000


class SeriesRegistry:
    """Maps (name, labels) to a dense index and remembers each series' id, name, labels and kind."""

    def __init__(self, max_series: int = DEFAULT_MAX_SERIES) -> None:
        self.max_series = max_series
        self._index: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        self.names: list[str] = []
        self.labels: list[dict[str, str]] = []
        self.kinds: list[str] = []
        self.id_hex: list[str] = []
        self.id_bytes: list[bytes] = []  # Kafka key of each series' aggregates
        self.json_prefix: list[bytes] = []  # b'{"v":1,"series_id":...,"kind":...,' of its WindowAggregate
        self._ids = np.zeros(1024, dtype=np.uint64)
        self._free: list[int] = []  # released indexes, reused first
        # Series refused since `clear_refused()`: (name, labels, kind), for the dead letters naming them.
        self.refused: list[tuple[str, dict[str, str], str]] = []
        self.refused_total = 0
        # Wire spellings already validated: a SampleBatch's common labels -> (name, kind, own labels) of a
        # block -> its index. The decoder's shortcut past merging, sorting and re-checking labels per block.
        self.spellings: dict[tuple[object, ...], dict[tuple[object, ...], int]] = {}

    def __len__(self) -> int:
        """Series held now (released ones not counted)."""
        return len(self.names) - len(self._free)

    def find(self, name: str, labels: Mapping[str, str]) -> int | None:
        """The index of a series already registered, else None (nothing is added)."""
        return self._index.get((name, tuple(sorted(labels.items()))))

    def index_of(self, name: str, labels: Mapping[str, str], kind: str = "gauge") -> int:
        """The series' index, added if new; negative (refused, see the module docstring) when full."""
        key = (name, tuple(sorted(labels.items())))
        found = self._index.get(key)
        if found is not None:
            return found
        if len(self) >= self.max_series:
            self.refused.append((name, dict(key[1]), kind))
            self.refused_total += 1
            return -len(self.refused)
        sid = series_id(name, labels)
        sid_hex = format_series_id(sid)
        head = {"v": 1, "series_id": sid_hex, "name": name, "labels": dict(key[1]), "kind": kind}
        row = (name, head["labels"], kind, sid_hex, sid_hex.encode(), orjson.dumps(head)[:-1] + b",")
        if self._free:
            idx = self._free.pop()
            for column, value in zip(self._columns(), row, strict=True):
                column[idx] = value
        else:
            idx = len(self.names)
            if idx >= len(self._ids):
                self._ids = np.concatenate([self._ids, np.zeros(len(self._ids), dtype=np.uint64)])
            for column, value in zip(self._columns(), row, strict=True):
                column.append(value)
        self._ids[idx] = sid
        self._index[key] = idx
        return idx

    def _columns(self) -> tuple[list[Any], ...]:
        return self.names, self.labels, self.kinds, self.id_hex, self.id_bytes, self.json_prefix

    def clear_refused(self) -> None:
        self.refused = []

    def release(self, keep: np.ndarray) -> int:
        """Release every series whose index is not in `keep` (those still held by some engine); their
        indexes are reused by new series. Returns how many were released. The decoder's spelling cache is
        emptied (it refills on the next messages), since it may name released indexes."""
        held = np.zeros(len(self.names), dtype=bool)
        held[keep[keep < len(self.names)]] = True
        held[self._free] = True  # already released
        gone = np.flatnonzero(~held).tolist()
        if not gone:
            return 0
        for idx in gone:
            del self._index[(self.names[idx], tuple(sorted(self.labels[idx].items())))]
            self.labels[idx] = {}
            self.json_prefix[idx] = b""
        self._free.extend(gone)
        self._ids[gone] = 0
        self.spellings.clear()
        return len(gone)

    @property
    def ids(self) -> np.ndarray:
        """uint64 series ids by dense index."""
        return self._ids[: len(self.names)]
