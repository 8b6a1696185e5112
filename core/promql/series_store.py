"""Recent raw samples per series, in growable numpy arrays, for the PromQL evaluator.

The store keeps enough history for the longest range a rule reads plus the 5-minute lookback; older
points are trimmed as new ones arrive, so memory stays bounded on an endless stream.

It also remembers what the evaluator derived from it (`memo`): many rules read the same selector over
the same range at the same tick (a recording rule and the alert on the same rate, several functions of
one gauge), and a derived value stays valid until a series of that metric name changes. Each name has a
version, bumped by every append, marker and prune, so a remembered value is never served stale.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TypeVar

import numpy as np

from watchkeeper.core.promql.values import STALE_NAN, Matcher, SeriesData, labels_key

_INITIAL_CAPACITY = 16
# What `memo` may hold, in points (a packed window counts its points): sized for the selectors of a few
# hundred rules over thousands of series, a few tens of MB at most.
MEMO_POINTS = 2_000_000
MATCHED_SELECTORS = 4096  # selectors whose matching series are remembered

T = TypeVar("T")


class _SeriesBuffer:
    """Ascending (ts, value) columns with spare capacity at the end, so appends are amortised O(1)."""

    __slots__ = ("bare", "labels", "n", "start", "ts", "values")

    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = labels
        self.bare = {k: v for k, v in labels.items() if k != "__name__"}  # what most functions return
        self.ts = np.empty(_INITIAL_CAPACITY, dtype=np.float64)
        self.values = np.empty(_INITIAL_CAPACITY, dtype=np.float64)
        self.start = 0
        self.n = 0

    @property
    def last_ts(self) -> float:
        return float(self.ts[self.n - 1]) if self.n > self.start else -np.inf

    def append(self, ts: np.ndarray, values: np.ndarray, retention: float) -> None:
        # A point must be newer than every point before it, in this batch or earlier ones: the same
        # points survive however a stream is cut into batches.
        newest_before = np.maximum.accumulate(np.concatenate(([self.last_ts], ts[:-1])))
        keep = ts > newest_before
        if not keep.all():
            ts, values = ts[keep], values[keep]
        k = len(ts)
        if k == 0:
            return
        if self.n + k > len(self.ts):
            self._compact(float(ts[-1]) - retention, k)
        self.ts[self.n : self.n + k] = ts
        self.values[self.n : self.n + k] = values
        self.n += k

    def append_point(self, ts: float, value: float, retention: float) -> None:
        """`append` of one point without building arrays: rule output and `ALERTS` come one at a time."""
        if not ts > (self.ts[self.n - 1] if self.n > self.start else -np.inf):
            return
        if self.n + 1 > len(self.ts):
            self._compact(ts - retention, 1)
        self.ts[self.n] = ts
        self.values[self.n] = value
        self.n += 1

    def _compact(self, before: float, incoming: int) -> None:
        """Drop points older than ``before`` and make room for ``incoming`` more (doubling, amortised)."""
        live_ts = self.ts[self.start : self.n]
        first = self.start + int(np.searchsorted(live_ts, before, side="left"))
        live = self.n - first
        capacity = max(_INITIAL_CAPACITY, 2 * (live + incoming))
        new_ts = np.empty(capacity, dtype=np.float64)
        new_values = np.empty(capacity, dtype=np.float64)
        new_ts[:live] = self.ts[first : self.n]
        new_values[:live] = self.values[first : self.n]
        self.ts, self.values, self.start, self.n = new_ts, new_values, 0, live

    def window(self, start: float, end: float) -> tuple[np.ndarray, np.ndarray]:
        """Views (not copies) of the points in ``start < ts <= end``."""
        live_ts = self.ts[self.start : self.n]
        lo, hi = live_ts.searchsorted((start, end), side="right").tolist()
        return live_ts[lo:hi], self.values[self.start + lo : self.start + hi]

    def last_at_or_before(self, end: float) -> tuple[float, float] | None:
        live_ts = self.ts[self.start : self.n]
        i = int(live_ts.searchsorted(end, side="right")) - 1
        if i < 0:
            return None
        return float(live_ts[i]), float(self.values[self.start + i])

    def prune(self, before: float) -> None:
        live_ts = self.ts[self.start : self.n]
        self.start += int(np.searchsorted(live_ts, before, side="left"))

    def __len__(self) -> int:
        return self.n - self.start


class SeriesStore:
    """Recent raw samples per series (numpy arrays), enough for the longest range + 5 min lookback."""

    def __init__(self, retention: float = 3600.0) -> None:
        self.retention = retention
        self._series: dict[tuple[tuple[str, str], ...], _SeriesBuffer] = {}
        self._by_name: dict[str, set[tuple[tuple[str, str], ...]]] = {}
        # Sorted key lists (Prometheus' series order) per name, rebuilt only when series come or go.
        self._sorted: dict[str | None, list[tuple[tuple[str, str], ...]]] = {}
        # The buffers matching a selector's other matchers, per (name, matchers): same lifetime as _sorted.
        self._matched: dict[tuple[str | None, tuple[Matcher, ...]], list[_SeriesBuffer]] = {}
        self._versions: dict[str, int] = {}  # per metric name: bumped by every change to its series
        self._version_all = 0  # bumped by every change at all (for selectors without an exact name)
        self._memo: dict[Hashable, tuple[tuple[str | None, int], object, int]] = {}
        self._memo_points = 0

    def _buffer(self, name: str, labels: Mapping[str, str]) -> _SeriesBuffer:
        full = {k: v for k, v in labels.items() if v != "" and k != "__name__"}
        full["__name__"] = name
        key = labels_key(full)
        buf = self._series.get(key)
        if buf is None:
            buf = self._series[key] = _SeriesBuffer(full)
            self._by_name.setdefault(name, set()).add(key)
            self._sorted.pop(name, None)
            self._sorted.pop(None, None)
            self._matched.clear()
        self._versions[name] = self._versions.get(name, 0) + 1
        self._version_all += 1
        return buf

    def append(self, name: str, labels: Mapping[str, str], ts: np.ndarray, values: np.ndarray) -> None:
        """Add points in ascending ts; a point not newer than every earlier one of its series is dropped."""
        ts = np.asarray(ts, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64)
        if ts.shape != values.shape:
            raise ValueError(f"ts and values differ in length: {ts.shape} != {values.shape}")
        self._buffer(name, labels).append(ts, values, self.retention)

    def append_one(self, name: str, labels: Mapping[str, str], ts: float, value: float,
                   key: tuple[tuple[str, str], ...] | None = None) -> None:
        """One point. `key`: the caller's `labels_key` of the labels with `__name__`, which finds a known
        series without building its key again (an unknown key takes the ordinary path)."""
        buf = self._series.get(key) if key is not None else None
        if buf is None:
            buf = self._buffer(name, labels)
        else:
            self._versions[name] = self._versions.get(name, 0) + 1
            self._version_all += 1
        buf.append_point(float(ts), float(value), self.retention)

    def mark_stale(self, name: str, labels: Mapping[str, str], ts: float) -> None:
        """Write Prometheus' staleness marker: the series ends here for instant selectors."""
        self.append_one(name, labels, ts, STALE_NAN)

    def select(self, matchers: Sequence[Matcher], start: float, end: float) -> list[SeriesData]:
        """Series matching every matcher, with their points in ``start < ts <= end`` (markers included)."""
        out: list[SeriesData] = []
        for buf in self._candidates(matchers):
            ts, values = buf.window(start, end)
            if len(ts):
                out.append(SeriesData(labels=dict(buf.labels), ts=ts.copy(), values=values.copy()))
        return out

    def windows(
        self, matchers: Sequence[Matcher], start: float, end: float
    ) -> list[tuple[Mapping[str, str], Mapping[str, str], np.ndarray, np.ndarray]]:
        """Like select, without copies: read-only label maps (with and without `__name__`) and array
        views, valid until the next append.

        The evaluator's hot path for range functions, which pack the views into one 2-D array anyway.
        """
        out: list[tuple[Mapping[str, str], Mapping[str, str], np.ndarray, np.ndarray]] = []
        for buf in self._candidates(matchers):
            ts, values = buf.window(start, end)
            if len(ts):
                out.append((buf.labels, buf.bare, ts, values))
        return out

    def _candidates(self, matchers: Sequence[Matcher]) -> list[_SeriesBuffer]:
        """Series matching every matcher, in Prometheus' order (sorted label sets)."""
        name = exact_name(matchers)
        rest = tuple(m for m in matchers if not (m.name == "__name__" and m.op == "=" and m.value == name))
        found = self._matched.get((name, rest))
        if found is not None:
            return found
        keys = self._sorted.get(name)
        if keys is None:
            keys = self._sorted[name] = sorted(self._by_name.get(name, ()) if name is not None else self._series)
        series = [self._series[key] for key in keys]
        if rest:
            series = [buf for buf in series if all(m.matches(buf.labels) for m in rest)]
        if len(self._matched) >= MATCHED_SELECTORS:  # ad-hoc queries must not grow it without end
            self._matched.clear()
        self._matched[(name, rest)] = series
        return series

    def memo(self, name: str | None, key: Hashable, make: Callable[[], tuple[T, int]]) -> T:
        """`make()`'s value (of a `(value, points)` pair) for `key`, computed again only once a series of
        metric `name` (None: of any name) has changed since. `points` sizes the entry: the oldest entries
        go when the memo holds more than MEMO_POINTS. The value is shared: treat it as read-only."""
        version = (name, self._version_all if name is None else self._versions.get(name, 0))
        hit = self._memo.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]  # type: ignore[return-value]
        value, points = make()
        if hit is not None:
            self._memo_points -= self._memo.pop(key)[2]
        while self._memo and self._memo_points + points > MEMO_POINTS:
            self._memo_points -= self._memo.pop(next(iter(self._memo)))[2]
        self._memo[key] = (version, value, points)
        self._memo_points += points
        return value

    def latest(self, matchers: Sequence[Matcher], start: float, end: float) -> list[tuple[dict[str, str], float]]:
        """The last point in ``start < ts <= end`` of each matching series: the instant-selector fast path."""
        out: list[tuple[dict[str, str], float]] = []
        for buf in self._candidates(matchers):
            found = buf.last_at_or_before(end)
            if found is not None and found[0] > start:
                out.append((dict(buf.labels), found[1]))
        return out

    def latest_points(self, matchers: Sequence[Matcher], start: float,
                      end: float) -> list[tuple[dict[str, str], float, float]]:
        """Like latest, with each point's own time: (labels, ts, value), for timestamp()."""
        out: list[tuple[dict[str, str], float, float]] = []
        for buf in self._candidates(matchers):
            found = buf.last_at_or_before(end)
            if found is not None and found[0] > start:
                out.append((dict(buf.labels), found[0], found[1]))
        return out

    def prune(self, before: float) -> None:
        """Forget points older than ``before``, and series left with none."""
        for name in self._versions:
            self._versions[name] += 1
        self._version_all += 1
        self._memo.clear()
        self._memo_points = 0
        self._matched.clear()
        for key in list(self._series):
            buf = self._series[key]
            buf.prune(before)
            if len(buf) == 0:
                del self._series[key]
                self._sorted.clear()
                name = buf.labels["__name__"]
                self._by_name[name].discard(key)
                if not self._by_name[name]:
                    del self._by_name[name]

    def series_count(self) -> int:
        return len(self._series)


def exact_name(matchers: Sequence[Matcher]) -> str | None:
    """The metric name a selector's `__name__="..."` matcher fixes, if it has one."""
    for m in matchers:
        if m.name == "__name__" and m.op == "=":
            return m.value
    return None
