"""Event-time tumbling windows per series, aligned to the epoch, closed by the watermark.

State is columnar: one row ("slot") per open (series, window) in numpy arrays, and the DDSketch bins of
every open window as (slot << CODE_BITS | bin code, count) pairs, so a batch of samples is applied with a
handful of whole-array operations rather than one Python object per sample.

Semantics (DESIGN.md, Time):
- window k of a series covers [k * width, (k + 1) * width);
- the watermark is the max event time seen minus `allowed_lateness`; windows whose end is at or before
  it close and are emitted once;
- a sample whose window has already closed is late: it is returned to the caller (dead-letter), never
  applied and never silently dropped;
- counter increase is reset-aware (a drop means the counter restarted from 0) and each delta between
  consecutive samples of a series is attributed to the window of the later sample, so the increases of
  adjacent windows add up exactly to the increase over their union. A counter sample older than the
  series' newest applied sample is counted in count/sum/min/max but adds no increase.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import orjson

from core.ddsketch_bins import CODE_BITS, GAMMA, KEY_OFFSET, NEG_BASE, ZERO_CODE, codes_of
from core.sample_columns import SampleColumns
from core.series_registry import SeriesRegistry

_MULT = 1.0 / np.log2(GAMMA)
_CODE_MASK = (1 << CODE_BITS) - 1
_ORDER_BITS = CODE_BITS + 1  # _value_order(code) < 2 ** _ORDER_BITS
_MAX_PENDING = 1 << 17  # samples waiting to be applied, at most
_LATE, _ON_TIME = np.ones(1, dtype=bool), np.zeros(1, dtype=bool)
_LATE.flags.writeable = _ON_TIME.flags.writeable = False


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
    """Windows of one input partition (the watermark is per partition)."""

    def __init__(
        self,
        registry: SeriesRegistry,
        width: float = 10.0,
        allowed_lateness: float = 5.0,
        quantiles: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99),
    ) -> None:
        self.registry = registry
        self.width = float(width)
        self.allowed_lateness = float(allowed_lateness)
        self.quantiles = quantiles
        self.max_event_time = -np.inf
        self.closed_before = np.iinfo(np.int64).min  # windows with k below this are closed
        self.late_samples = 0
        # Open (series, window) keys (series << 32 | window) sorted, and the slot of each: looked up and
        # updated for a whole batch with searchsorted and masks (a dict cost ~0.5 µs per window here).
        self._open_keys = np.zeros(0, dtype=np.int64)
        self._open_slots = np.zeros(0, dtype=np.int64)
        self._free: list[int] = []
        self._n_slots = 0
        cap = 1024
        self._k = np.zeros(cap, dtype=np.int64)
        self._series = np.zeros(cap, dtype=np.int64)
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
        self._pending: list[tuple[SampleColumns, np.ndarray]] = []
        self._pending_n = 0
        self._single: list[tuple[int, float, float, bool, int]] = []  # waiting one-sample batches
        self._empty = ClosedWindows.empty(quantiles)
        self._close_due = False  # closed_before moved past open windows not yet returned (advance(emit=False))

    @property
    def watermark(self) -> float:
        return float(self.max_event_time - self.allowed_lateness)

    @property
    def open_windows(self) -> int:
        self._apply_pending()
        return len(self._open_keys)

    def ingest(self, cols: SampleColumns) -> np.ndarray:
        """Accept a batch; return the boolean mask of its late samples (not applied).

        Accepted samples are applied lazily, all at once when a window is about to close (or when many
        are waiting): a window cannot close before then, so which samples are late is decided exactly
        as if each batch were applied on arrival, while small batches (single-sample messages) share
        the fixed cost of one update. A counter sample not newer than a waiting sample of its series
        first applies what waits, so reset-aware increases see the same order as eager application."""
        if len(cols) == 1:
            return self._ingest_one(cols)
        if len(cols) == 0:
            return np.zeros(0, dtype=bool)
        self._singles_to_pending()
        k = np.floor(cols.ts / self.width).astype(np.int64)
        late = k < self.closed_before
        if late.any():
            self.late_samples += int(late.sum())
            keep = ~late
            cols, k = cols.take(keep), k[keep]
            if len(cols) == 0:
                return late
        self._grow_series(int(cols.series.max()) + 1)
        if cols.counter.any():
            cs, cts = cols.series[cols.counter], cols.ts[cols.counter]
            if self._pending and (cts <= self._pending_max_ts[cs]).any():
                self._apply_pending()
            np.maximum.at(self._pending_max_ts, cs, cts)
        self._pending.append((cols, k))
        self._pending_n += len(cols)
        self.max_event_time = max(self.max_event_time, float(cols.ts.max()))
        if self._pending_n >= _MAX_PENDING:
            self._apply_pending()
        return late

    def _ingest_one(self, cols: SampleColumns) -> np.ndarray:
        late = self.ingest_sample(int(cols.series[0]), float(cols.ts[0]), float(cols.values[0]),
                                  bool(cols.counter[0]))
        return _LATE if late else _ON_TIME

    def ingest_sample(self, s: int, ts: float, v: float, c: bool) -> bool:
        """`ingest` of one sample (series index, time, value, is counter) in plain Python, numpy's per-call
        cost would be most of the work; True if it is late (not applied)."""
        k = math.floor(ts / self.width)
        if k < self.closed_before:
            self.late_samples += 1
            return True
        if s >= len(self._prev_val):
            self._grow_series(s + 1)
        if c:
            if ts <= self._pending_max_ts[s] and (self._pending or self._single):
                self._apply_pending()
            if ts > self._pending_max_ts[s]:
                self._pending_max_ts[s] = ts
        self._single.append((s, ts, v, c, k))
        self._pending_n += 1
        if ts > self.max_event_time:
            self.max_event_time = ts
        if self._pending_n >= _MAX_PENDING:
            self._apply_pending()
        return False

    def _singles_to_pending(self) -> None:
        if self._single:
            s, ts, v, c, k = zip(*self._single, strict=True)
            self._single = []
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
        """Close every window whose end is at or before the watermark.

        With `emit=False` the windows are closed (later samples for them are late) but kept back, to be
        returned by the next `advance()`: a run of messages then pays for one close, not one each. The
        result is the same windows in the same order as closing them one advance at a time, since
        each advance closes windows with a larger start than the one before and output is sorted by
        (start, series id)."""
        if self.max_event_time != -math.inf:
            close_before = math.floor((self.max_event_time - self.allowed_lateness) / self.width)
            if close_before > self.closed_before:
                self.closed_before = close_before
                self._close_due = True
        if not emit or not self._close_due:
            return self._empty
        self._close_due = False
        self._apply_pending()
        n = self._n_slots
        closing = self._used[:n] & (self._k[:n] < self.closed_before)
        return self._close(np.flatnonzero(closing))

    def flush(self) -> ClosedWindows:
        """Close every open window regardless of the watermark (end of input in tests and replays)."""
        self._apply_pending()
        self._close_due = False
        n = self._n_slots
        return self._close(np.flatnonzero(self._used[:n]))

    # -- snapshots ---------------------------------------------------------------------------------

    _SLOT_ARRAYS = ("_k", "_count", "_sum", "_min", "_max", "_last", "_last_ts", "_inc")

    def snapshot(self) -> bytes:
        """The whole state as bytes: an orjson header (scalars, the series it references by name and
        labels, array layout) then the arrays' raw bytes. Dense indexes are local to the snapshot, so it
        restores into any registry. Samples still waiting in the pending buffer are applied first: a
        snapshot that left them out would lose them on restore (the input offset it covers is past them)."""
        self._apply_pending()
        self._compact_bins()
        n = self._n_slots
        used = np.flatnonzero(self._used[:n])
        with_prev = np.flatnonzero(np.isfinite(self._prev_ts))
        referenced = np.union1d(self._series[used], with_prev)
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
        arrays["prev_series"] = local[with_prev]
        arrays["prev_val"] = self._prev_val[with_prev]
        arrays["prev_ts"] = self._prev_ts[with_prev]
        reg = self.registry
        header = {
            "v": 1, "width": self.width, "allowed_lateness": self.allowed_lateness,
            "quantiles": list(self.quantiles),
            "max_event_time": None if not np.isfinite(self.max_event_time) else self.max_event_time,
            "closed_before": self.closed_before, "late_samples": self.late_samples, "close_due": self._close_due,
            "series": [[reg.names[i], reg.labels[i], reg.kinds[i]] for i in referenced.tolist()],
            "arrays": [[name, a.dtype.str, len(a)] for name, a in arrays.items()],
        }
        head = orjson.dumps(header)
        return b"".join([len(head).to_bytes(4, "big"), head, *(a.tobytes() for a in arrays.values())])

    @classmethod
    def restore(cls, data: bytes, registry: SeriesRegistry) -> WindowEngine:
        """The engine `snapshot()` wrote, its series registered in `registry`."""
        size = int.from_bytes(data[:4], "big")
        header = orjson.loads(data[4:4 + size])
        pos = 4 + size
        arrays: dict[str, np.ndarray] = {}
        for name, dtype, length in header["arrays"]:
            dt = np.dtype(dtype)
            arrays[name] = np.frombuffer(data, dtype=dt, count=length, offset=pos).copy()
            pos += dt.itemsize * length
        eng = cls(registry, header["width"], header["allowed_lateness"], tuple(header["quantiles"]))
        mt = header["max_event_time"]
        eng.max_event_time = -np.inf if mt is None else float(mt)
        eng.closed_before = int(header["closed_before"])
        eng.late_samples = int(header["late_samples"])
        eng._close_due = bool(header.get("close_due", False))  # absent in snapshots older than advance(emit=)
        dense = np.asarray([registry.index_of(name, labels, kind) for name, labels, kind in header["series"]]
                           + [0], dtype=np.int64)
        m = len(arrays["_k"])
        while len(eng._k) < m:
            eng._grow_slots()
        for name in cls._SLOT_ARRAYS:
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
        prev = dense[arrays["prev_series"]]
        eng._prev_val[prev] = arrays["prev_val"]
        eng._prev_ts[prev] = arrays["prev_ts"]
        return eng

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
        self._count[new] = 0
        self._sum[new] = self._inc[new] = 0.0
        return found

    def _grow_slots(self) -> None:
        for name in ("_k", "_series", "_used", "_count", "_sum", "_min", "_max", "_last", "_last_ts", "_inc"):
            old = getattr(self, name)
            setattr(self, name, np.concatenate([old, np.zeros_like(old)]))

    def _grow_series(self, n: int) -> None:
        if n > len(self._prev_val):
            size = max(n, 2 * len(self._prev_val))
            self._prev_val = np.concatenate([self._prev_val, np.full(size - len(self._prev_val), np.nan)])
            self._prev_ts = np.concatenate([self._prev_ts, np.full(size - len(self._prev_ts), -np.inf)])
            self._pending_max_ts = np.concatenate([self._pending_max_ts,
                                                   np.full(size - len(self._pending_max_ts), -np.inf)])

    def _close(self, slots: np.ndarray) -> ClosedWindows:
        if len(slots) == 0:
            return ClosedWindows.empty(self.quantiles)
        ids = self.registry.ids[self._series[slots]]
        slots = slots[np.lexsort((ids, self._k[slots]))]
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
    neg = (codes >= NEG_BASE) & (codes < ZERO_CODE)
    zero = codes == ZERO_CODE
    key = np.where(zero, 0, np.where(neg, codes - NEG_BASE, codes) - KEY_OFFSET)
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
