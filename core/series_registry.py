"""Dense indexes for series, so per-series state lives in numpy arrays rather than dicts of objects."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import orjson

from schemas.series_id import format_series_id, series_id


class SeriesRegistry:
    """Maps (name, labels) to a dense index and remembers each series' id, name, labels and kind."""

    def __init__(self) -> None:
        self._index: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        self.names: list[str] = []
        self.labels: list[dict[str, str]] = []
        self.kinds: list[str] = []
        self.id_hex: list[str] = []
        self.id_bytes: list[bytes] = []  # Kafka key of each series' aggregates
        self.json_prefix: list[bytes] = []  # b'{"v":1,"series_id":...,"kind":...,' of its WindowAggregate
        self._ids = np.zeros(1024, dtype=np.uint64)
        # Wire spellings already validated: a SampleBatch's common labels -> (name, kind, own labels) of a
        # block -> its index. The decoder's shortcut past merging, sorting and re-checking labels per block.
        self.spellings: dict[tuple[object, ...], dict[tuple[object, ...], int]] = {}

    def __len__(self) -> int:
        return len(self.names)

    def find(self, name: str, labels: Mapping[str, str]) -> int | None:
        """The index of a series already registered, else None (nothing is added)."""
        return self._index.get((name, tuple(sorted(labels.items()))))

    def index_of(self, name: str, labels: Mapping[str, str], kind: str = "gauge") -> int:
        key = (name, tuple(sorted(labels.items())))
        found = self._index.get(key)
        if found is not None:
            return found
        idx = len(self.names)
        sid = series_id(name, labels)
        if idx >= len(self._ids):
            self._ids = np.concatenate([self._ids, np.zeros(len(self._ids), dtype=np.uint64)])
        self._ids[idx] = sid
        self._index[key] = idx
        self.names.append(name)
        self.labels.append(dict(key[1]))
        self.kinds.append(kind)
        self.id_hex.append(format_series_id(sid))
        self.id_bytes.append(self.id_hex[-1].encode())
        head = {"v": 1, "series_id": self.id_hex[-1], "name": name, "labels": self.labels[-1], "kind": kind}
        self.json_prefix.append(orjson.dumps(head)[:-1] + b",")
        return idx

    @property
    def ids(self) -> np.ndarray:
        """uint64 series ids by dense index."""
        return self._ids[: len(self.names)]
