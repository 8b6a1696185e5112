"""Dense indexes for series, so per-series state lives in numpy arrays rather than dicts of objects."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from schemas.series_id import format_series_id, series_id


class SeriesRegistry:
    """Maps (name, labels) to a dense index and remembers each series' id, name, labels and kind."""

    def __init__(self) -> None:
        self._index: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        self.names: list[str] = []
        self.labels: list[dict[str, str]] = []
        self.kinds: list[str] = []
        self.id_hex: list[str] = []
        self._ids = np.zeros(1024, dtype=np.uint64)

    def __len__(self) -> int:
        return len(self.names)

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
        return idx

    @property
    def ids(self) -> np.ndarray:
        """uint64 series ids by dense index."""
        return self._ids[: len(self.names)]
