"""Event-time tumbling windows per series, aligned to the epoch, closed by the watermark.

State is columnar: one row ("slot") per open (series, window) in numpy arrays, and the DDSketch bins of
every open window as (slot << CODE_BITS | bin code, count) pairs, so a batch of samples is applied with a
handful of whole-array operations rather than one Python object per sample.

Semantics (DESIGN.md, Time):
- window k of a series covers [k * width, (k + 1) * width);
- each source (the message's Kafka key) has its own watermark: the max event time accepted from it minus
  `allowed_lateness`; a series belongs to the source that first sent it (another source takes it over
  only once that one went idle), its windows close once their end is at or before their source's
  watermark and a sample is late once its window closed, so one source's clock never closes another's
  windows nor makes its samples late;
- windows are returned in the order they became closable (the input message that made them so), then
  by (start, series id): whatever runs of messages `advance()` is called after, the same sequence;
- processing time comes in as an argument (`now`, the same for every sample of a message, e.g. when it
  was written to Kafka): a sample more than `max_future` ahead of its message's `now` is refused
  (`future`); a source that sent nothing for `idle_timeout` of the engine's processing clock has all its
  open windows closed. That clock only moves as far as the sender's own clock moved since its previous
  message (a source new here moves it not at all), so a writer whose clock is off by an hour moves it at
  the same rate as the others, and cannot make everyone else look idle;
- every refused sample is returned to the caller with its reason (`core.sample_rejects.Reject`: late,
  future, bad_timestamp, bad_value, series_limit) to be dead-lettered, never applied and never silently
  dropped; a sample whose window has already closed is late;
- a series that sent nothing for `series_idle` of processing time and has no open window is forgotten
  (its counter's last value with it), so that the registry can reuse its index;
- a source likewise (idle, nothing accepted for `series_idle`, no open window, no series of its own) is
  forgotten from every per-source structure, at the same processing times as series (input-determined,
  so a replay forgets the same sources at the same messages); a new source beyond `max_sources` held is
  refused (`source_limit`): the Kafka key is the sender's choice, and memory must not follow it;
- counter increase is reset-aware (a drop means the counter restarted from 0) and each delta between
  consecutive samples of a series is attributed to the window of the later sample, so the increases of
  adjacent windows add up exactly to the increase over their union. A counter sample older than the
  series' newest applied sample is counted in count/sum/min/max but adds no increase.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from watchkeeper.core.checkpoint_frame import frame, unframe
from watchkeeper.core.ddsketch_bins import CODE_BITS, GAMMA, NEG_BASE, ZERO_CODE, codes_of, decode_codes
from watchkeeper.core.sample_columns import SampleColumns
from watchkeeper.core.sample_rejects import MAX_ABS_VALUE, MAX_TS, MIN_TS, Reject
from watchkeeper.core.series_registry import SeriesRegistry
from watchkeeper.core.source_clocks import SourceClocks

_MULT = 1.0 / np.log2(GAMMA)
_CODE_MASK = (1 << CODE_BITS) - 1
_ORDER_BITS = CODE_BITS + 1  # _value_order(code) < 2 ** _ORDER_BITS
_MAX_PENDING = 1 << 17  # samples waiting to be applied, at most
_NO_K = np.iinfo(np.int64).min
_VERDICTS = [np.full(1, r, dtype=np.int8) for r in Reject]  # one-sample results, shared and read-only
for _v in _VERDICTS:
    _v.flags.writeable = False


@dataclass(frozen=True)
class ClosedWindows:
    """Windows closed by one watermark advance, sorted by (start, series id): deterministic order."""

    series: np.ndarray  # dense series index
    start: np.ndarray
    end: np.ndarray
    count: np.ndarray
    sum: np.ndarray
    min: np.ndarray
    max: np.ndarray
    last: np.ndarray
    increase: np.ndarray
    quantiles: dict[float, np.ndarray]
    bin_offsets: np.ndarray  # window i's bins are bin_codes[bin_offsets[i]:bin_offsets[i + 1]]
    bin_codes: np.ndarray
    bin_counts: np.ndarray

    def __len__(self) -> int:
        return len(self.series)

    def take(self, index: np.ndarray) -> ClosedWindows:
        """The windows at `index` (with their bins), in that order."""
        lo, hi = self.bin_offsets[index], self.bin_offsets[index + 1]
        sel = np.concatenate([np.arange(a, b) for a, b in zip(lo.tolist(), hi.tolist(), strict=True)] + [
            np.zeros(0, dtype=np.int64)])
        return ClosedWindows(
            self.series[index], self.start[index], self.end[index], self.count[index], self.sum[index],
            self.min[index], self.max[index], self.last[index], self.increase[index],
            {q: v[index] for q, v in self.quantiles.items()}, np.concatenate([[0], np.cumsum(hi - lo)]),
            self.bin_codes[sel], self.bin_counts[sel],
        )

    @classmethod
    def empty(cls, quantiles: tuple[float, ...]) -> ClosedWindows:
        f, i = np.zeros(0), np.zeros(0, dtype=np.int64)
        return cls(i, f, f, i, f, f, f, f, f, {q: f for q in quantiles}, np.zeros(1, dtype=np.int64), i, i)


class WindowEngine:
    """Windows of one input partition, closed per source (see the module docstring)."""

    def __init__(
        self,
        registry: SeriesRegistry,
        width: float = 10.0,
        allowed_lateness: float = 5.0,
        quantiles: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99),
        max_future: float = 600.0,
        idle_timeout: float | None = None,
        series_idle: float | None = None,
        max_sources: int = 100_000,
    ) -> None:
        self.registry = registry
        self.width = float(width)
        self.allowed_lateness = float(allowed_lateness)
        self.quantiles = quantiles
        self.max_future = float(max_future)
        self.idle_timeout = float(2 * self.width + self.allowed_lateness if idle_timeout is None else idle_timeout)
        self.series_idle = float(max(3600.0, 4 * self.idle_timeout) if series_idle is None else series_idle)
        self.max_sources = int(max_sources)
        self.sources_forgotten = 0
        self.late_samples = 0
        self.rejected = [0] * len(Reject)  # samples refused, by reason code
        # Per source (event time, activity, the processing clock): shared with the rules step.
        self.src = SourceClocks(self.idle_timeout, self.max_future)
        self._src_max = self.src.max_et  # the same list (hot paths read it directly)
        self._src_active = self.src.active
        self._src_cb: list[int] = []  # windows with k below this are closed
        self._dirty: set[int] = set()  # sources whose max moved since the last advance
        self._guarded = False  # some series' emitted bound may be past its owner's (taken over): check it
        self._epoch = 0  # input messages (ingest calls) and ticks so far: when a window became closable
        self._closings: list[tuple[int, int, int]] = []  # (source, new closed bound, epoch) since the last emit
        self._evict_due = -math.inf  # processing time of the next series eviction
        # Open (series, window) keys (series << 32 | window) sorted, and the slot of each: looked up and
        # updated for a whole batch with searchsorted and masks (a dict cost ~0.5 µs per window here).
        self._open_keys = np.zeros(0, dtype=np.int64)
        self._open_slots = np.zeros(0, dtype=np.int64)
        self._free: list[int] = []
        self._n_slots = 0
        cap = 1024
        self._k = np.zeros(cap, dtype=np.int64)
        self._series = np.zeros(cap, dtype=np.int64)
        self._slot_src = np.zeros(cap, dtype=np.int64)  # the source whose watermark closes the window
        self._used = np.zeros(cap, dtype=bool)
        self._count = np.zeros(cap, dtype=np.int64)
        self._sum = np.zeros(cap)
        self._min = np.zeros(cap)
        self._max = np.zeros(cap)
        self._last = np.zeros(cap)
        self._last_ts = np.zeros(cap)
        self._inc = np.zeros(cap)
        self._bin_keys: list[np.ndarray] = []
        self._bin_counts: list[np.ndarray] = []
        self._prev_val = np.full(1024, np.nan)
        self._prev_ts = np.full(1024, -np.inf)
        self._pending_max_ts = np.full(1024, -np.inf)  # newest waiting counter sample per series
        self._series_src = np.full(1024, -1, dtype=np.int64)  # the source it belongs to (-1: none here)
        self._series_cb = np.full(1024, _NO_K, dtype=np.int64)  # its windows below this were emitted
        self._series_seen = np.full(1024, -np.inf)  # processing time of its last sample
        self._pending: list[tuple[SampleColumns, np.ndarray]] = []
        self._pending_n = 0
        self._single: list[tuple[int, float, float, bool, int, float]] = []  # waiting one-sample batches
        self._empty = ClosedWindows.empty(quantiles)
        self._close_due = False  # windows became closable and were not returned yet (advance(emit=False))

    @property
    def source_names(self) -> list[str | None]:
        """By source index; None at a forgotten source's free index."""
        return self.src.names

    @property
    def source_ids(self) -> dict[str, int]:
        return self.src.ids

    @property
    def source_future(self) -> list[int]:
        """Samples refused as `future`, by source."""
        return self.src.future

    @property
    def source_late(self) -> list[int]:
        return self.src.late

    @property
    def proc_time(self) -> float:
        """The processing clock (see the module docstring)."""
        return self.src.proc_time

    def source_index(self, name: str) -> int:
        """The index of source `name` (the message's key), added on first use."""
        i = self.src.ids.get(name)
        if i is None:
            i = self.src.index(name)
            if i == len(self._src_cb):
                self._src_cb.append(_NO_K)
            else:  # a forgotten source's index, reused
                self._src_cb[i] = _NO_K
        return i

    def admit_source(self, name: str) -> int:
        """`source_index(name)`, or -1 if `name` is new and `max_sources` sources are held: `ingest` then
        refuses its samples (`source_limit`)."""
        i = self.src.ids.get(name)
        if i is not None:
            return i
        if len(self.src) >= self.max_sources:
            return -1
        return self.source_index(name)

    def watermark(self, source: int = 0) -> float:
        """Source `source`'s watermark (-inf before its first sample, or for a refused source: -1)."""
        if source < 0 or source >= len(self._src_max):
            return -math.inf
        return float(self._src_max[source] - self.allowed_lateness)

    @property
    def open_windows(self) -> int:
        self._apply_pending()
        return len(self._open_keys)

    def tick(self, now: float) -> None:
        """Processing time moved to `now` (never backwards): sources idle for `idle_timeout` get their open
        windows closed (returned by the next `advance()`), series idle for `series_idle` are forgotten."""
        self._epoch += 1
        self._clock(now)

    def _clock_from(self, source: int, now: float) -> None:
        """A message from `source` written at `now` (`SourceClocks.message`), then the idle check if due."""
        src = self.src
        src.message(source, now)
        if src.proc_time >= src.idle_due or src.proc_time >= self._evict_due:
            self._idle_check(keep=source)

    def _clock(self, now: float) -> None:
        src = self.src
        src.move(now)
        if src.proc_time >= src.idle_due or src.proc_time >= self._evict_due:
            self._idle_check()

    def quiet_close_time(self) -> float | None:
        """The processing time at which every source sending to this engine is idle, if it has open windows:
        the worker ticks an engine whose partition gets no messages at this time (`tick(quiet_close_time())`),
        a time that depends on the input only, so a replay closes the same windows at the same point."""
        if not self._has_open():
            return None
        return self.src.quiet_time()

    def _has_open(self) -> bool:
        return bool(self._pending or self._single or len(self._open_keys))

    def ingest(self, cols: SampleColumns, source: int = 0, now: float | None = None) -> np.ndarray:
        """Accept a batch from `source` (a `source_index`) at processing time `now` (None: no future
        check, no idle closing); return each sample's `Reject` code (int8, 0: applied).

        Accepted samples are applied lazily, all at once when a window is about to close (or when many
        are waiting): a window cannot close before then, so which samples are late is decided exactly
        as if each batch were applied on arrival, while small batches (single-sample messages) share
        the fixed cost of one update. A counter sample not newer than a waiting sample of its series
        first applies what waits, so reset-aware increases see the same order as eager application."""
        n = len(cols)
        if n == 1:
            return _VERDICTS[self.ingest_sample(int(cols.series[0]), float(cols.ts[0]), float(cols.values[0]),
                                                bool(cols.counter[0]), source, now)]
        self._epoch += 1
        if source < 0:  # refused by `admit_source`: no state for it at all
            verdict = np.full(n, Reject.SOURCE_LIMIT, dtype=np.int8)
            self.rejected[Reject.SOURCE_LIMIT] += n
            return verdict
        if source >= len(self._src_max):
            self._unnamed(source)
        if now is not None:
            self._clock_from(source, now)
        if n == 0:
            return np.zeros(0, dtype=np.int8)
        self._singles_to_pending()
        if len(self._prev_val) < len(self.registry.names):
            self._grow_series(len(self.registry.names))
        ts, series, values = cols.ts, cols.series, cols.values
        verdict = np.zeros(n, dtype=np.int8)
        ts_max = float(ts.max())
        # The common case in a few whole-array reductions: NaN fails every comparison, so it takes the
        # slow path; a refused series (negative index) exists only while the registry lists one.
        if (ts_max <= (MAX_TS if now is None else min(MAX_TS, now + self.max_future)) and ts.min() >= MIN_TS
                and values.max() <= MAX_ABS_VALUE and values.min() >= -MAX_ABS_VALUE and not self.registry.refused):
            k = np.floor(ts / self.width).astype(np.int64)
            owner = self._series_src[series]
            mine = bool((owner == source).all())
            if mine and not self._guarded:
                cb = self._src_cb[source]
                if k.min() < cb:
                    verdict[k < cb] = Reject.LATE
            else:
                verdict[k < self._closed_bound(series, owner, source)] = Reject.LATE
        else:
            mine = False
            verdict[~((values >= -MAX_ABS_VALUE) & (values <= MAX_ABS_VALUE))] = Reject.BAD_VALUE
            verdict[~((ts >= MIN_TS) & (ts <= MAX_TS))] = Reject.BAD_TIMESTAMP
            if now is not None:
                verdict[(verdict == 0) & (ts > now + self.max_future)] = Reject.FUTURE
            verdict[(verdict == 0) & (series < 0)] = Reject.SERIES_LIMIT
            ok = verdict == 0
            k = np.floor(np.where(ok, ts, 0.0) / self.width).astype(np.int64)
            known = np.where(ok, series, 0)
            verdict[ok & (k < self._closed_bound(known, self._series_src[known], source))] = Reject.LATE
        if verdict.any():
            self._count_rejects(verdict, source)
            keep = verdict == 0
            cols, k = cols.take(keep), k[keep]
            if len(cols) == 0:
                return verdict
            ts_max, mine = float(cols.ts.max()), False
        if cols.counter.any():
            cs, cts = cols.series[cols.counter], cols.ts[cols.counter]
            if self._pending and (cts <= self._pending_max_ts[cs]).any():
                self._apply_pending()
            np.maximum.at(self._pending_max_ts, cs, cts)
        self._pending.append((cols, k))
        self._pending_n += len(cols)
        if not mine:
            self._take_over(cols.series, source)
        self._series_seen[cols.series] = self.proc_time
        self._source_seen(source, ts_max)
        if self._pending_n >= _MAX_PENDING:
            self._apply_pending()
        return verdict

    def _unnamed(self, source: int) -> None:
        while source >= len(self._src_max):  # an index never named: sources #0, #1, ...
            self.source_index(f"#{len(self.source_names)}")

    def _closed_bound(self, series: np.ndarray, owner: np.ndarray, source: int) -> np.ndarray:
        """Per sample, the first window of its series not closed yet: by its owner's watermark, by the
        sender's if it takes the series over, and by what was emitted."""
        bound = np.maximum(self._series_cb[series], np.asarray([*self._src_cb, _NO_K], dtype=np.int64)[owner])
        return np.where(self._taken_over(owner), np.maximum(bound, self._src_cb[source]), bound)

    def _taken_over(self, owner: np.ndarray) -> np.ndarray:
        """Whether a series with this owner passes to the source sending it: it has none, or an idle one
        (whose windows are all closable, so a window never changes source while open)."""
        return (owner < 0) | ~np.asarray([*self._src_active, False], dtype=bool)[owner]

    def _take_over(self, series: np.ndarray, source: int) -> None:
        """Series new here, or whose owner went idle, become `source`'s; an idle owner's windows stay closed
        (`_series_cb`, checked from then on: `_guarded`)."""
        owner = self._series_src[series]
        taken = self._taken_over(owner)
        if taken.any():
            s, o = series[taken], owner[taken]
            if (o >= 0).any():
                np.maximum.at(self._series_cb, s, np.asarray([*self._src_cb, _NO_K], dtype=np.int64)[o])
                self._guarded = True
            self._series_src[s] = source

    def _source_seen(self, source: int, max_ts: float) -> None:
        if self.src.accepted(source, max_ts):
            self._dirty.add(source)

    def _count_rejects(self, verdict: np.ndarray, source: int) -> None:
        counts = np.bincount(verdict, minlength=len(Reject)).tolist()
        for r in range(1, len(Reject)):
            self.rejected[r] += counts[r]
        self.late_samples += counts[Reject.LATE]
        self.src.late[source] += counts[Reject.LATE]
        self.src.future[source] += counts[Reject.FUTURE]

    def ingest_sample(self, s: int, ts: float, v: float, c: bool, source: int = 0, now: float | None = None) -> int:
        """`ingest` of one sample (series index, time, value, is counter) in plain Python, numpy's per-call
        cost would be most of the work; its `Reject` code (0: applied)."""
        self._epoch += 1
        if source < 0:  # refused by `admit_source`
            self.rejected[Reject.SOURCE_LIMIT] += 1
            return int(Reject.SOURCE_LIMIT)
        if source >= len(self._src_max):
            self._unnamed(source)
        if now is not None:
            self._clock_from(source, now)
        if (MIN_TS <= ts <= MAX_TS and -MAX_ABS_VALUE <= v <= MAX_ABS_VALUE
                and (now is None or ts <= now + self.max_future) and s >= 0):
            k = math.floor(ts / self.width)
            if s >= len(self._prev_val):
                self._grow_series(s + 1)
            owner = self._series_src.item(s)
            if owner == source and not self._guarded:
                late = k < self._src_cb[source]
            else:
                bound = max(self._series_cb.item(s), _NO_K if owner < 0 else self._src_cb[owner])
                if owner < 0 or not self._src_active[owner]:
                    bound = max(bound, self._src_cb[source])
                late = k < bound
            if not late:
                if c:
                    if ts <= self._pending_max_ts[s] and (self._pending or self._single):
                        self._apply_pending()
                    if ts > self._pending_max_ts[s]:
                        self._pending_max_ts[s] = ts
                if owner != source:
                    self._take_over(np.asarray([s]), source)
                self._single.append((s, ts, v, c, k, self.proc_time))
                self._pending_n += 1
                self._source_seen(source, ts)
                if self._pending_n >= _MAX_PENDING:
                    self._apply_pending()
                return 0
            verdict = Reject.LATE
            self.late_samples += 1
            self.src.late[source] += 1
        elif not MIN_TS <= ts <= MAX_TS:  # also NaN
            verdict = Reject.BAD_TIMESTAMP
        elif not -MAX_ABS_VALUE <= v <= MAX_ABS_VALUE:
            verdict = Reject.BAD_VALUE
        elif now is not None and ts > now + self.max_future:
            verdict = Reject.FUTURE
            self.src.future[source] += 1
        else:
            verdict = Reject.SERIES_LIMIT
        self.rejected[verdict] += 1
        return int(verdict)

    def _idle_check(self, keep: int = -1) -> None:
        """Close the open windows of every source idle for `idle_timeout` and forget series and sources
        idle for `series_idle` (never `keep`, the source whose message is being ingested); find when to
        check next."""
        t = self.proc_time
        idle = self.src.expire() if t >= self.src.idle_due else []
        if idle:
            self._apply_pending()
            n = self._n_slots
            open_slots = np.flatnonzero(self._used[:n])
            owner = self._slot_src[open_slots]
            for i in idle:
                ks = self._k[open_slots[owner == i]]
                if len(ks) and ks.max() >= self._src_cb[i]:
                    self._src_cb[i] = int(ks.max()) + 1
                    self._closings.append((i, self._src_cb[i], self._epoch))
                    self._close_due = True
        if t >= self._evict_due:
            self._evict_series(t - self.series_idle)
            self._forget_sources(t - self.series_idle, keep)
            self._evict_due = t + self.series_idle / 4

    def _forget_sources(self, before: float, keep: int) -> None:
        """Forget the sources idle since before processing time `before` that own no series and no open
        window and have no closing waiting to be emitted: nothing of theirs is left to close, so only
        their memory goes (a source that comes back starts afresh, as a new one)."""
        stale = self.src.stale(before, keep)
        if not stale:
            return
        held = set(np.unique(self._series_src[self._series_src >= 0]).tolist())
        held.update(np.unique(self._slot_src[np.flatnonzero(self._used[:self._n_slots])]).tolist())
        held.update(c[0] for c in self._closings)
        held.update(self._dirty)
        for i in stale:
            if i not in held:
                self.src.forget(i)
                self._src_cb[i] = _NO_K
                self.sources_forgotten += 1

    def _evict_series(self, before: float) -> None:
        """Forget series last seen before processing time `before` that have no open window."""
        self._apply_pending()
        m = len(self._series_seen)
        stale = (self._series_seen < before) & (self._series_src >= 0)
        if not stale.any():
            return
        stale[self._series[np.flatnonzero(self._used[:self._n_slots])]] = False
        self._reset_series(np.flatnonzero(stale[:m]))

    def _reset_series(self, idx: np.ndarray) -> None:
        self._prev_val[idx] = np.nan
        self._prev_ts[idx] = -np.inf
        self._series_src[idx] = -1
        self._series_cb[idx] = _NO_K
        self._series_seen[idx] = -np.inf

    def referenced_series(self) -> np.ndarray:
        """Dense indexes of the series this engine holds state for (the registry must keep them)."""
        self._apply_pending()
        held = self._series_src >= 0
        held |= np.isfinite(self._prev_ts)
        held[self._series[np.flatnonzero(self._used[:self._n_slots])]] = True
        return np.flatnonzero(held)

    def _singles_to_pending(self) -> None:
        if self._single:
            s, ts, v, c, k, seen = zip(*self._single, strict=True)
            self._single = []
            np.maximum.at(self._series_seen, np.asarray(s, dtype=np.int64), np.asarray(seen, dtype=np.float64))
            self._pending.append((SampleColumns(np.asarray(s, dtype=np.int64), np.asarray(ts, dtype=np.float64),
                                                np.asarray(v, dtype=np.float64), np.asarray(c, dtype=bool)),
                                  np.asarray(k, dtype=np.int64)))

    def _apply_pending(self) -> None:
        self._singles_to_pending()
        if not self._pending:
            return
        if len(self._pending) == 1:
            cols, k = self._pending[0]
        else:
            parts = [c for c, _ in self._pending]
            cols = SampleColumns(*(np.concatenate([getattr(c, f) for c in parts])
                                   for f in ("series", "ts", "values", "counter")))
            k = np.concatenate([kk for _, kk in self._pending])
        self._pending, self._pending_n = [], 0
        self._pending_max_ts.fill(-np.inf)
        self._apply(cols, k)

    def advance(self, emit: bool = True) -> ClosedWindows:
        """Close every window whose end is at or before its source's watermark (or whose source went idle).

        With `emit=False` the windows are closed (later samples for them are late) but kept back, to be
        returned by the next `advance()`: a run of messages then pays for one close, not one each. The
        result is the same windows in the same order as closing them one advance at a time, since
        output is sorted by (start, series id) and a window, once closable, stays closable."""
        if self._dirty:
            for src in self._dirty:
                close_before = math.floor((self._src_max[src] - self.allowed_lateness) / self.width)
                if close_before > self._src_cb[src]:
                    self._src_cb[src] = close_before
                    self._closings.append((src, close_before, self._epoch))
                    self._close_due = True
            self._dirty.clear()
        if not emit or not self._close_due:
            return self._empty
        self._close_due = False
        self._apply_pending()
        n = self._n_slots
        open_slots = np.flatnonzero(self._used[:n])
        src_cb = np.asarray(self._src_cb, dtype=np.int64)
        owner = self._slot_src[open_slots]
        closing = self._k[open_slots] < src_cb[owner]
        slots, owner = open_slots[closing], owner[closing]
        # When each became closable: the first closing of its owner's since the last emit past its window.
        became = np.zeros(len(slots), dtype=np.int64)
        if self._closings:
            hist = np.asarray(self._closings, dtype=np.int64)
            for src in np.unique(hist[:, 0]).tolist():
                mine = np.flatnonzero(owner == src)
                if len(mine):
                    h = hist[hist[:, 0] == src]
                    at = np.minimum(np.searchsorted(h[:, 1], self._k[slots[mine]], side="right"), len(h) - 1)
                    became[mine] = h[at, 2]
            self._closings = []
        return self._close(slots, became)

    def flush(self) -> ClosedWindows:
        """Close every open window regardless of the watermark (end of input in tests and replays)."""
        self._apply_pending()
        self._close_due = False
        self._closings = []
        n = self._n_slots
        return self._close(np.flatnonzero(self._used[:n]))

    # -- snapshots ---------------------------------------------------------------------------------

    _SLOT_ARRAYS = ("_k", "_count", "_sum", "_min", "_max", "_last", "_last_ts", "_inc", "_slot_src")

    def snapshot(self) -> bytes:
        """The whole state as bytes: an orjson header (scalars, sources, the series it references by name
        and labels, array layout) then the arrays' raw bytes. Dense indexes are local to the snapshot, so it
        restores into any registry. Samples still waiting in the pending buffer are applied first: a
        snapshot that left them out would lose them on restore (the input offset it covers is past them).
        Every number in the header is finite or null, so it always encodes."""
        self._apply_pending()
        self._compact_bins()
        n = self._n_slots
        used = np.flatnonzero(self._used[:n])
        referenced = self.referenced_series()
        local = np.full(max(len(self._prev_val), 1), -1, dtype=np.int64)
        local[referenced] = np.arange(len(referenced))
        slot_local = np.full(max(n, 1), -1, dtype=np.int64)
        slot_local[used] = np.arange(len(used))
        keys = self._bin_keys[0] if self._bin_keys else np.zeros(0, dtype=np.int64)
        counts = self._bin_counts[0] if self._bin_counts else np.zeros(0, dtype=np.int64)
        arrays: dict[str, np.ndarray] = {name: getattr(self, name)[used] for name in self._SLOT_ARRAYS}
        arrays["series"] = local[self._series[used]]
        arrays["bin_keys"] = (slot_local[keys >> CODE_BITS] << CODE_BITS) | (keys & _CODE_MASK)
        arrays["bin_counts"] = counts
        for name, _ in self._SERIES_ARRAYS:
            if name != "_pending_max_ts":  # empty once pending samples are applied
                arrays[name] = getattr(self, name)[referenced]
        reg = self.registry
        header = {
            "v": 2, "width": self.width, "allowed_lateness": self.allowed_lateness,
            "quantiles": list(self.quantiles), "max_future": self.max_future, "idle_timeout": self.idle_timeout,
            "series_idle": self.series_idle, "max_sources": self.max_sources,
            "proc_time": _finite(self.proc_time), "epoch": self._epoch,
            "idle_due": _finite(min(self.src.idle_due, self._evict_due)), "evict_due": _finite(self._evict_due),
            "late_samples": self.late_samples, "rejected": self.rejected, "close_due": self._close_due,
            "closings": self._closings, "guarded": self._guarded,
            # [name, max_et, closed bound, seen, active, future, late, sent_at, clock]
            # (null: a forgotten source's free index)
            "sources": [None if row is None else [row[0], row[1], cb, *row[2:]]
                        for cb, row in zip(self._src_cb, self.src.state(), strict=True)],
            "series": [[reg.names[i], reg.labels[i], reg.kinds[i]] for i in referenced.tolist()],
            "arrays": [[name, a.dtype.str, len(a)] for name, a in arrays.items()],
        }
        return frame(header, *(a.tobytes() for a in arrays.values()))

    @classmethod
    def restore(cls, data: bytes, registry: SeriesRegistry, **limits: float | None) -> WindowEngine:
        """The engine `snapshot()` wrote, its series registered in `registry`. `limits` (max_future,
        idle_timeout, series_idle) override the snapshot's, as a changed configuration does on restart.
        A version 1 snapshot (one watermark per partition) restores with its state under one source named
        "" whose watermark is the partition's: its windows close as before, and each series passes to the
        first real source that sends it."""
        framed = unframe(data)
        header, pos = framed.head, framed.body_at
        arrays: dict[str, np.ndarray] = {}
        for name, dtype, length in header["arrays"]:
            dt = np.dtype(dtype)
            arrays[name] = np.frombuffer(data, dtype=dt, count=length, offset=pos).copy()
            pos += dt.itemsize * length
        settings = {key: header.get(key) for key in ("max_future", "idle_timeout", "series_idle", "max_sources")}
        settings.update({key: value for key, value in limits.items() if value is not None})
        eng = cls(registry, header["width"], header["allowed_lateness"], tuple(header["quantiles"]),
                  max_future=settings["max_future"] or 600.0, idle_timeout=settings["idle_timeout"],
                  series_idle=settings["series_idle"], max_sources=int(settings["max_sources"] or 100_000))
        eng.late_samples = int(header["late_samples"])
        eng._close_due = bool(header.get("close_due", False))  # absent in snapshots older than advance(emit=)
        dense = np.asarray([registry.index_of(name, labels, kind) for name, labels, kind in header["series"]]
                           + [0], dtype=np.int64)
        if (dense < 0).any():
            raise ValueError("the series registry is full: cannot restore this snapshot (raise windows.max_series)")
        m = len(arrays["_k"])
        while len(eng._k) < m:
            eng._grow_slots()
        for name in cls._SLOT_ARRAYS:
            if name in arrays:  # "_slot_src" is not in a version 1 snapshot
                getattr(eng, name)[:m] = arrays[name]
        eng._series[:m] = dense[arrays["series"]]
        eng._used[:m] = True
        eng._n_slots = m
        keys = _window_keys(eng._series[:m], eng._k[:m])
        order = np.argsort(keys, kind="stable")
        eng._open_keys, eng._open_slots = keys[order], order.astype(np.int64)
        if len(arrays["bin_keys"]):
            eng._bin_keys, eng._bin_counts = [arrays["bin_keys"]], [arrays["bin_counts"]]
        if len(dense) > 1:
            eng._grow_series(int(dense.max()) + 1)
        if header["v"] == 1:
            cls._restore_v1(eng, header, arrays, dense)
            return eng
        eng._epoch = int(header["epoch"])
        eng.src.idle_due = _or_inf(header["idle_due"], math.inf)
        eng._evict_due = _or_inf(header["evict_due"], -math.inf)
        eng.rejected = [int(x) for x in header["rejected"]]
        eng._closings = [(int(a), int(b), int(c)) for a, b, c in header["closings"]]
        eng._guarded = bool(header["guarded"])
        rows = header["sources"]  # [name, max_et, closed bound, ...]: `SourceClocks.state()` with the bound
        eng.src.load([None if r is None else [r[0], r[1], *r[3:]] for r in rows], header["proc_time"])
        eng._src_cb[:] = [_NO_K if r is None else int(r[2]) for r in rows]
        here = dense[:-1]
        for name, _ in cls._SERIES_ARRAYS:
            if name in arrays:
                getattr(eng, name)[here] = arrays[name]
        return eng

    @staticmethod
    def _restore_v1(eng: WindowEngine, header: dict[str, Any], arrays: dict[str, np.ndarray],
                    dense: np.ndarray) -> None:
        src = eng.source_index("")
        mt = header["max_event_time"]
        eng._src_max[src] = -math.inf if mt is None else float(mt)
        eng._src_cb[src] = int(header["closed_before"])
        eng._src_active[src] = bool(eng._n_slots)
        eng.src.idle_due = -math.inf  # checked at the first clock, which is also when "" was last seen
        eng._slot_src[:eng._n_slots] = src
        eng._series_src[eng._series[:eng._n_slots]] = src
        eng._series_cb[dense[:-1]] = int(header["closed_before"])
        eng._guarded = True
        prev = dense[arrays["prev_series"]]
        eng._prev_val[prev] = arrays["prev_val"]
        eng._prev_ts[prev] = arrays["prev_ts"]

    def _compact_bins(self) -> None:
        """Merge the per-batch bin arrays into one (sums counts of equal (slot, code) pairs)."""
        if len(self._bin_keys) > 1:
            keys, counts = _sum_by_key(np.concatenate(self._bin_keys), np.concatenate(self._bin_counts))
            self._bin_keys, self._bin_counts = [keys], [counts]

    # -- internals ---------------------------------------------------------------------------------

    def _apply(self, cols: SampleColumns, k: np.ndarray) -> None:
        order = _series_time_order(cols.series, cols.ts)
        sidx, ts, v, counter, k = cols.series[order], cols.ts[order], cols.values[order], cols.counter[order], k[order]
        n = len(ts)
        inc = self._counter_increase(sidx, ts, v, counter)

        change = np.empty(n, dtype=bool)
        change[0] = True
        np.not_equal(sidx[1:], sidx[:-1], out=change[1:])
        change[1:] |= k[1:] != k[:-1]
        starts = np.flatnonzero(change)
        ends = np.append(starts[1:], n)
        counts = ends - starts
        g_series, g_k = sidx[starts], k[starts]

        slots = self._slots_for(g_series, g_k)

        fresh = self._count[slots] == 0
        self._count[slots] += counts
        self._sum[slots] += np.add.reduceat(v, starts)
        g_min, g_max = np.minimum.reduceat(v, starts), np.maximum.reduceat(v, starts)
        self._min[slots] = np.where(fresh, g_min, np.minimum(self._min[slots], g_min))
        self._max[slots] = np.where(fresh, g_max, np.maximum(self._max[slots], g_max))
        g_last, g_last_ts = v[ends - 1], ts[ends - 1]
        newer = fresh | (g_last_ts >= self._last_ts[slots])
        self._last[slots] = np.where(newer, g_last, self._last[slots])
        self._last_ts[slots] = np.where(newer, g_last_ts, self._last_ts[slots])
        self._inc[slots] += np.add.reduceat(inc, starts)

        composite = (np.repeat(slots, counts) << CODE_BITS) | codes_of(v)
        keys, bin_counts = np.unique(composite, return_counts=True)
        self._bin_keys.append(keys)
        self._bin_counts.append(bin_counts)

    def _counter_increase(self, sidx: np.ndarray, ts: np.ndarray, v: np.ndarray, counter: np.ndarray) -> np.ndarray:
        inc = np.zeros(len(v))
        if not counter.any():
            return inc
        pos = np.flatnonzero(counter & (ts > self._prev_ts[sidx]))
        if len(pos) == 0:
            return inc
        s, t, x = sidx[pos], ts[pos], v[pos]
        first = np.empty(len(pos), dtype=bool)
        first[0] = True
        np.not_equal(s[1:], s[:-1], out=first[1:])
        before = np.empty(len(pos))
        before[1:] = x[:-1]
        before[first] = self._prev_val[s[first]]
        delta = x - before
        inc[pos] = np.where(np.isnan(before), 0.0, np.where(delta >= 0, delta, x))
        last = np.append(first[1:], True)
        self._prev_val[s[last]] = x[last]
        self._prev_ts[s[last]] = t[last]
        return inc

    def _slots_for(self, g_series: np.ndarray, g_k: np.ndarray) -> np.ndarray:
        """The slot of each (series, window), new ones allocated and zeroed in bulk."""
        keys = _window_keys(g_series, g_k)  # unique: one group per (series, window)
        open_keys, open_slots = self._open_keys, self._open_slots
        pos = np.minimum(np.searchsorted(open_keys, keys), max(len(open_keys) - 1, 0))
        found = np.full(len(keys), -1, dtype=np.int64)
        if len(open_keys):
            hit = open_keys[pos] == keys
            found[hit] = open_slots[pos[hit]]
        miss = np.flatnonzero(found < 0)
        m = len(miss)
        if m == 0:
            return found
        reuse = min(m, len(self._free))
        fresh = m - reuse
        while self._n_slots + fresh > len(self._k):
            self._grow_slots()
        new = np.concatenate([np.asarray(self._free[len(self._free) - reuse:], dtype=np.int64),
                              np.arange(self._n_slots, self._n_slots + fresh, dtype=np.int64)])
        del self._free[len(self._free) - reuse:]
        self._n_slots += fresh
        found[miss] = new
        all_keys = np.concatenate([open_keys, keys[miss]])
        order = np.argsort(all_keys, kind="stable")
        self._open_keys, self._open_slots = all_keys[order], np.concatenate([open_slots, new])[order]
        self._used[new] = True
        self._series[new], self._k[new] = g_series[miss], g_k[miss]
        self._slot_src[new] = self._series_src[g_series[miss]]
        self._count[new] = 0
        self._sum[new] = self._inc[new] = 0.0
        return found

    def _grow_slots(self) -> None:
        for name in ("_k", "_series", "_slot_src", "_used", "_count", "_sum", "_min", "_max", "_last", "_last_ts",
                     "_inc"):
            old = getattr(self, name)
            setattr(self, name, np.concatenate([old, np.zeros_like(old)]))

    _SERIES_ARRAYS = (("_prev_val", np.nan), ("_prev_ts", -np.inf), ("_pending_max_ts", -np.inf),
                      ("_series_src", -1), ("_series_cb", _NO_K), ("_series_seen", -np.inf))

    def _grow_series(self, n: int) -> None:
        if n > len(self._prev_val):
            size = max(n, 2 * len(self._prev_val))
            for name, fill in self._SERIES_ARRAYS:
                old = getattr(self, name)
                setattr(self, name, np.concatenate([old, np.full(size - len(old), fill, dtype=old.dtype)]))

    def _close(self, slots: np.ndarray, became: np.ndarray | None = None) -> ClosedWindows:
        if len(slots) == 0:
            return ClosedWindows.empty(self.quantiles)
        ids = self.registry.ids[self._series[slots]]
        slots = slots[np.lexsort((ids, self._k[slots]) if became is None else (ids, self._k[slots], became))]
        np.maximum.at(self._series_cb, self._series[slots], self._k[slots] + 1)
        closing = np.zeros(self._n_slots, dtype=bool)
        closing[slots] = True

        keys = np.concatenate(self._bin_keys) if self._bin_keys else np.zeros(0, dtype=np.int64)
        counts = np.concatenate(self._bin_counts) if self._bin_counts else np.zeros(0, dtype=np.int64)
        mine = closing[keys >> CODE_BITS]
        self._bin_keys = [keys[~mine]] if (~mine).any() else []
        self._bin_counts = [counts[~mine]] if self._bin_keys else []
        keys, counts = keys[mine], counts[mine]
        # Renumber bins from slot order to output order, then sort by (window, value order) and merge equal
        # bins (one per batch that hit them): one sort of one int64 key.
        rank = np.empty(self._n_slots, dtype=np.int64)
        rank[slots] = np.arange(len(slots))
        codes = keys & _CODE_MASK
        composite = (rank[keys >> CODE_BITS] << _ORDER_BITS) | _value_order(codes)
        order = np.argsort(composite, kind="stable")  # runs of bins already in order: timsort
        composite, codes, counts = composite[order], codes[order], counts[order]
        first = np.empty(len(composite), dtype=bool)
        first[:1] = True
        np.not_equal(composite[1:], composite[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        win, codes = composite[starts] >> _ORDER_BITS, codes[starts]
        counts = np.add.reduceat(counts, starts) if len(starts) else counts[:0]
        offsets = np.searchsorted(win, np.arange(len(slots) + 1))

        vmin, vmax = self._min[slots].copy(), self._max[slots].copy()
        result = ClosedWindows(
            series=self._series[slots].copy(),
            start=self._k[slots] * self.width,
            end=(self._k[slots] + 1) * self.width,
            count=self._count[slots].copy(),
            sum=self._sum[slots].copy(),
            min=vmin,
            max=vmax,
            last=self._last[slots].copy(),
            increase=self._inc[slots].copy(),
            quantiles=_quantiles(self.quantiles, offsets, codes, counts, vmin, vmax),
            bin_offsets=offsets,
            bin_codes=codes,
            bin_counts=counts,
        )
        keep = ~closing[self._open_slots]
        self._open_keys, self._open_slots = self._open_keys[keep], self._open_slots[keep]
        self._used[slots] = False
        self._free.extend(slots.tolist())
        return result


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _or_inf(x: float | None, default: float) -> float:
    return default if x is None else float(x)


def _series_time_order(series: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """`np.lexsort((ts, series))`: samples by series, then time, ties in arrival order. Producers send
    each series' points in time order, so a stable sort by series alone (timsort over the runs of each
    message, ~4x cheaper than lexsort) usually gives it already; checked, else lexsort."""
    order = np.argsort(series, kind="stable")
    s, t = series[order], ts[order]
    if ((t[1:] < t[:-1]) & (s[1:] == s[:-1])).any():
        return np.lexsort((ts, series))
    return order


def _window_keys(series: np.ndarray, k: np.ndarray) -> np.ndarray:
    """One int64 per (series, window): series << 32 | the window number's low 32 bits."""
    return (series << 32) | (k & 0xFFFFFFFF)


def _sum_by_key(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, inverse = np.unique(keys, return_inverse=True)
    return uniq, np.bincount(inverse, weights=counts, minlength=len(uniq)).astype(np.int64)


def _value_order(codes: np.ndarray) -> np.ndarray:
    """Sort key that orders bin codes by the values they stand for: negatives (largest magnitude
    first), zero, positives."""
    neg = (codes >= NEG_BASE) & (codes < ZERO_CODE)
    non_negative = np.where(codes == ZERO_CODE, NEG_BASE + 1, NEG_BASE + 2 + codes)
    return np.where(neg, NEG_BASE - (codes - NEG_BASE), non_negative)


def code_values(codes: np.ndarray) -> np.ndarray:
    """The representative value of each bin code."""
    keys, neg, zero = decode_codes(codes)
    key = np.where(zero, 0, keys)
    mag = np.power(2.0, key / _MULT) * (2.0 / (1.0 + GAMMA))
    return np.where(zero, 0.0, np.where(neg, -mag, mag))


def _quantiles(qs: tuple[float, ...], offsets: np.ndarray, codes: np.ndarray, counts: np.ndarray,
               vmin: np.ndarray, vmax: np.ndarray) -> dict[float, np.ndarray]:
    """DDSketch's quantile rule for every window at once: the bin holding rank q * (n - 1), clipped to
    the window's exact min and max. The cumulative counts are shared by every q."""
    cum = np.cumsum(counts)
    base = np.concatenate([[0], cum])[offsets[:-1]]
    totals = cum[offsets[1:] - 1] - base
    last = offsets[1:] - 1
    out = {}
    for q in qs:
        idx = np.minimum(np.searchsorted(cum, base + q * (totals - 1), side="right"), last)
        out[q] = np.clip(code_values(codes[idx]), vmin, vmax)
    return out
