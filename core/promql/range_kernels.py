"""Range-vector functions over many series at once, bit-identical to Prometheus 2.42's per-series Go code.

Series are packed into padded 2-D arrays (one row per series, ``lens`` valid points each, times in
integer milliseconds as Prometheus stores them). Every loop runs over the *points* of a window (tens)
rather than over the series (thousands), and performs the same IEEE operations in the same order as
promql/functions.go, so the floats match Prometheus exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from watchkeeper.core.promql.values import stale_mask


@dataclass
class Packed:
    """Windows of n series: ``ts`` (int64 ms) and ``values`` of shape (n, width); ``lens`` valid each."""

    ts: np.ndarray
    values: np.ndarray
    lens: np.ndarray

    @classmethod
    def of(cls, ts_list: list[np.ndarray], value_list: list[np.ndarray]) -> Packed:
        """Pack windows, dropping staleness markers (range functions never see them); rows may end empty."""
        n = len(ts_list)
        lens = np.fromiter((len(t) for t in ts_list), dtype=np.int64, count=n)
        rows = np.repeat(np.arange(n), lens)
        flat_ts = np.concatenate(ts_list) if n else np.empty(0)
        flat_values = np.concatenate(value_list) if n else np.empty(0)
        fresh = ~stale_mask(flat_values)
        if not fresh.all():
            rows, flat_ts, flat_values = rows[fresh], flat_ts[fresh], flat_values[fresh]
            lens = np.bincount(rows, minlength=n).astype(np.int64)
        width = max(int(lens.max()), 1) if n else 0  # a row of only markers still has a (padding) column
        ts = np.zeros((n, width), dtype=np.int64)
        values = np.full((n, width), np.nan)
        if len(rows):
            cols = np.arange(len(rows)) - np.repeat(np.cumsum(lens) - lens, lens)
            ts[rows, cols] = np.rint(flat_ts * 1000.0).astype(np.int64)
            values[rows, cols] = flat_values
        return cls(ts, values, lens)

    def nonempty(self) -> np.ndarray:
        return self.lens > 0

    @property
    def rows(self) -> np.ndarray:
        return np.arange(len(self.lens))

    def last(self) -> tuple[np.ndarray, np.ndarray]:
        idx = np.maximum(self.lens - 1, 0)
        return self.ts[self.rows, idx], self.values[self.rows, idx]

    def valid(self, j: int) -> np.ndarray:
        return self.lens > j

    @property
    def full_width(self) -> int:
        """Columns valid in every row: the kernels' loops skip their masks there (same floats, fewer ops)."""
        return int(self.lens.min()) if len(self.lens) else 0


def _kahan_inc(inc: np.ndarray, total: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """kahanSumInc (Neumaier), elementwise."""
    t = total + inc
    c = c + np.where(np.abs(total) >= np.abs(inc), (total - t) + inc, (inc - t) + total)
    return t, c


def extrapolated_rate(p: Packed, range_start: int, range_end: int, range_s: float, is_counter: bool,
                      is_rate: bool, threshold_first: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """rate/increase/delta: (values, defined) per series; defined needs two points.

    ``threshold_first``: Prometheus 3 caps the extrapolation to the range start at half a sample interval
    before it considers where a counter would have been zero; Prometheus 2 does it the other way round.
    """
    with np.errstate(all="ignore"):
        last_t, last_v = p.last()
        first_t, first_v = p.ts[:, 0], p.values[:, 0]
        result = last_v - first_v
        if is_counter and p.values.shape[1] > 1:
            resets = (p.values[:, 1:] < p.values[:, :-1]) & (np.arange(1, p.values.shape[1]) < p.lens[:, None])
            for j in (np.flatnonzero(resets.any(axis=0)) + 1).tolist():  # point order, as the Go loop adds
                result = np.where(resets[:, j - 1], result + p.values[:, j - 1], result)
        n = p.lens.astype(np.float64)
        to_start = (first_t - range_start).astype(np.float64) / 1000
        to_end = (range_end - last_t).astype(np.float64) / 1000
        sampled = (last_t - first_t).astype(np.float64) / 1000
        average = sampled / (n - 1)
        threshold = average * 1.1
        if threshold_first:
            to_start = np.where(to_start >= threshold, average / 2, to_start)
        if is_counter:
            to_zero = sampled * (first_v / result)
            use_zero = (result > 0) & (first_v >= 0) & (to_zero < to_start)
            to_start = np.where(use_zero, to_zero, to_start)
        interval = sampled + (to_start if threshold_first else np.where(to_start < threshold, to_start, average / 2))
        interval = interval + np.where(to_end < threshold, to_end, average / 2)
        factor = interval / sampled
        if is_rate:
            factor = factor / range_s
        return result * factor, p.lens >= 2


def instant_rate(p: Packed) -> tuple[np.ndarray, np.ndarray]:
    """irate: the last two points; a drop counts as a reset."""
    with np.errstate(all="ignore"):
        idx = np.maximum(p.lens - 1, 0)
        prev_idx = np.maximum(p.lens - 2, 0)
        last_v, prev_v = p.values[p.rows, idx], p.values[p.rows, prev_idx]
        interval = p.ts[p.rows, idx] - p.ts[p.rows, prev_idx]
        result = np.where(last_v < prev_v, last_v, last_v - prev_v)
        return result / (interval.astype(np.float64) / 1000), (p.lens >= 2) & (interval != 0)


def linear_regression(p: Packed, intercept_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slope and intercept as linearRegression: Kahan sums in point order; constant series exact.

    The four sums (x, y, xy, x²) run side by side in one (4, series) array: the same operations in the
    same order per sum, a quarter of the numpy calls."""
    n_rows, width = p.values.shape
    init_y = p.values[:, 0]
    full = p.full_width
    with np.errstate(all="ignore"):
        x = (p.ts - intercept_ms[:, None]).astype(np.float64) / 1e3
        y = p.values
        incs = np.stack((x, y, x * y, x * x))
        sums, comps = np.zeros((4, n_rows)), np.zeros((4, n_rows))
        for j in range(width):
            t, c = _kahan_inc(incs[:, :, j], sums, comps)
            if j < full:
                sums, comps = t, c
            else:
                ok = p.valid(j)
                sums, comps = np.where(ok, t, sums), np.where(ok, c, comps)
        valid = np.arange(width) < p.lens[:, None]
        const_y = ((y == init_y[:, None]) | ~valid).all(axis=1)
        n = p.lens.astype(np.float64)
        sx, sy, sxy, sx2 = sums + comps
        cov = sxy - sx * sy / n
        var = sx2 - sx * sx / n
        slope = cov / var
        intercept = sy / n - slope * sx / n
    inf_const = const_y & np.isinf(init_y)
    slope = np.where(const_y, np.where(inf_const, np.nan, 0.0), slope)
    intercept = np.where(const_y, np.where(inf_const, np.nan, init_y), intercept)
    return slope, intercept


def sum_over_time(p: Packed) -> np.ndarray:
    total = np.zeros(len(p.lens))
    c = np.zeros(len(p.lens))
    full = p.full_width
    with np.errstate(all="ignore"):
        for j in range(p.values.shape[1]):
            t, c2 = _kahan_inc(p.values[:, j], total, c)
            if j < full:
                total, c = t, c2
                continue
            ok = p.valid(j)
            total, c = np.where(ok, t, total), np.where(ok, c2, c)
        return np.where(np.isinf(total), total, total + c)


def avg_over_time(p: Packed) -> np.ndarray:
    """The overflow-safe running mean of funcAvgOverTime, Inf handling included."""
    mean = np.zeros(len(p.lens))
    c = np.zeros(len(p.lens))
    count = np.zeros(len(p.lens))
    full = p.full_width
    with np.errstate(all="ignore"):
        for j in range(p.values.shape[1]):
            ok = p.valid(j)
            x = p.values[:, j]
            count = np.where(ok, count + 1, count)
            inf_mean = np.isinf(mean)
            if j < full and not inf_mean.any():  # nothing to keep: every row takes the step
                mean, c = _kahan_inc(x / count - mean / count, mean, c)
                continue
            keep_mean = inf_mean & (
                (np.isinf(x) & ((mean > 0) == (x > 0))) | (~np.isinf(x) & ~np.isnan(x))
            )
            update = ok & ~keep_mean
            t, c2 = _kahan_inc(x / count - mean / count, mean, c)
            mean, c = np.where(update, t, mean), np.where(update, c2, c)
        return np.where(np.isinf(mean), mean, mean + c)


def ts_of_extreme_over_time(p: Packed, largest: bool) -> np.ndarray:
    """ts_of_max/min_over_time (Prometheus 3, compareOverTime): the time in seconds of the last point
    holding the extreme value (ties go to the later point; a NaN is replaced by any later point)."""
    best = p.values[:, 0].copy()
    when = p.ts[:, 0].copy()
    for j in range(1, p.values.shape[1]):
        x = p.values[:, j]
        better = (x >= best) if largest else (x <= best)
        take = p.valid(j) & (better | np.isnan(best))
        best, when = np.where(take, x, best), np.where(take, p.ts[:, j], when)
    return when / 1000.0


def extreme_over_time(p: Packed, largest: bool) -> np.ndarray:
    """max/min_over_time: a NaN is replaced by any later point, as in the Go loop."""
    best = p.values[:, 0].copy()
    for j in range(1, p.values.shape[1]):
        x = p.values[:, j]
        better = (x > best) if largest else (x < best)
        best = np.where(p.valid(j) & (better | np.isnan(best)), x, best)
    return best


def value_changes(p: Packed, resets: bool) -> np.ndarray:
    """changes(): how often the value differs from the previous point (two NaNs are equal);
    resets(): how often it decreases (a counter reset). funcChanges / funcResets of functions.go."""
    out = np.zeros(len(p.lens))
    for j in range(1, p.values.shape[1]):
        prev, cur = p.values[:, j - 1], p.values[:, j]
        hit = cur < prev if resets else (cur != prev) & ~(np.isnan(cur) & np.isnan(prev))
        out += p.valid(j) & hit
    return out


def quantile(q: float, values: list[float]) -> float:
    """promql/quantile.go quantile: interpolation between closest ranks, NaNs sorted first."""
    if not values or math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(values, key=lambda x: (0, 0.0) if math.isnan(x) else (1, x))
    n = float(len(ordered))
    rank = q * (n - 1)
    lower = max(0.0, math.floor(rank))
    upper = min(n - 1, lower + 1)
    weight = rank - math.floor(rank)
    return ordered[int(lower)] * (1 - weight) + ordered[int(upper)] * weight


def instant_delta(p: Packed) -> tuple[np.ndarray, np.ndarray]:
    """idelta: the difference of the last two points (no reset handling, no division)."""
    with np.errstate(all="ignore"):
        idx = np.maximum(p.lens - 1, 0)
        prev_idx = np.maximum(p.lens - 2, 0)
        interval = p.ts[p.rows, idx] - p.ts[p.rows, prev_idx]
        return p.values[p.rows, idx] - p.values[p.rows, prev_idx], (p.lens >= 2) & (interval != 0)


def variance_over_time(p: Packed) -> np.ndarray:
    """stdvar_over_time (the square root of it is stddev_over_time): Welford's running mean and sum of
    squares, both Kahan-compensated, in point order, as funcStdvarOverTime."""
    n_rows = len(p.lens)
    count = np.zeros(n_rows)
    mean, c_mean, aux, c_aux = (np.zeros(n_rows) for _ in range(4))
    full = p.full_width
    with np.errstate(all="ignore"):
        for j in range(p.values.shape[1]):
            x = p.values[:, j]
            if j < full:
                count = count + 1
                delta = x - (mean + c_mean)
                mean, c_mean = _kahan_inc(delta / count, mean, c_mean)
                aux, c_aux = _kahan_inc(delta * (x - (mean + c_mean)), aux, c_aux)
                continue
            ok = p.valid(j)
            count = np.where(ok, count + 1, count)
            delta = x - (mean + c_mean)
            m, cm = _kahan_inc(delta / count, mean, c_mean)
            mean, c_mean = np.where(ok, m, mean), np.where(ok, cm, c_mean)
            a, ca = _kahan_inc(delta * (x - (mean + c_mean)), aux, c_aux)
            aux, c_aux = np.where(ok, a, aux), np.where(ok, ca, c_aux)
        return (aux + c_aux) / count


def double_exponential_smoothing(p: Packed, sf: float, tf: float) -> tuple[np.ndarray, np.ndarray]:
    """holt_winters (Prometheus 3: double_exponential_smoothing), funcHoltWinters' loop; needs 2 points."""
    s1 = p.values[:, 0].copy()
    b = np.where(p.lens >= 2, p.values[:, 1 % max(p.values.shape[1], 1)] - s1, 0.0)
    s0 = np.zeros(len(p.lens))
    with np.errstate(all="ignore"):
        for i in range(1, p.values.shape[1]):
            ok = p.valid(i)
            x = sf * p.values[:, i]
            trend = b if i == 1 else tf * (s1 - s0) + (1 - tf) * b
            y = (1 - sf) * (s1 + trend)
            s0, s1, b = np.where(ok, s1, s0), np.where(ok, x + y, s1), np.where(ok, trend, b)
    return s1, p.lens >= 2


def mad_over_time(p: Packed) -> np.ndarray:
    """Median absolute deviation (Prometheus 3): NaN if any point is NaN."""
    out = np.empty(len(p.lens))
    for i in range(len(p.lens)):
        values = p.values[i, : p.lens[i]].tolist()
        if any(math.isnan(v) for v in values):
            out[i] = math.nan
            continue
        median = quantile(0.5, values)
        out[i] = quantile(0.5, [abs(v - median) for v in values])
    return out
