"""Two simple tests that must agree, ONE absolute scale, one detection per event (the default's first member).

Raw statistic: the geometric mean of two z's, z = sqrt(z_local * z_window):
- z_local = |x - median of the last 32 points| / robust scale, the robust scale = max(1.4826 MAD, half
  the mean absolute deviation, the median non-zero step between consecutive values (the series'
  resolution), a float floor) over the last ``window`` (288) points;
- z_window = |x - mean| / standard deviation of the last ``window`` points;
both over fewer points while the series is young (from ``min_points``, 20). Score z / (z + 3), kept only
if z is above every z of the previous ``holdoff`` (10) points, else 0.

Why each part (measured on public labelled real-world corpora, NAB-style, one threshold for a whole
corpus; bench/anomaly/evaluate_real.py and the README's tables):

- one scale for every series: z / (z + 3) is a fixed function of z, so "z = 6" scores the same on every
  series, young or old. The other detectors' per-series calibration ranks a point against the series'
  own history, which under one global threshold failed both ways on real series: a series a few hundred
  points old cannot reach the threshold (its empirical tail cannot say "1 in 2,000" after 400 points),
  and autocorrelated, regime-changing, heavy-tailed or quantised series produce far more "1 in 1,000"
  points than promised.
- ready after 20 points: on hourly series of a few hundred points, a detector that waits 288 points
  misses the first anomalies.
- two tests that must agree (the geometric mean is large only if both are; Skyline's consensus idea):
  the local test follows a lasting change within a few dozen points and is not blinded by past spikes
  (the standard deviation is), but alone it flags too much on long noisy series; the window z-score is
  the reverse. The consensus was the best balance over the corpora (alone, the local test won on short
  hourly series with dense labels and lost on long ones with few labels, the plain z-score the
  reverse). The resolution floor stops a quantised series (MAD 0) from turning one step into z = 20.
- one event, one detection (the hold-off): the first point of an incident fires, its next points do not
  unless the incident gets worse. Under NAB-style scoring every extra flagged point outside a labelled
  window costs and inside one counts nothing; for alerting, use ``for: 0s`` and ``keep_firing_for``.

Streaming and exact: the statistics are refreshed every ``block`` (8) points from the ``window`` points
before the block, by the same numpy code (row by row) whether the points come in one batch or one per
call, so both paths give bit-identical z's (the hold-off compares z's, so a last-bit difference would
change a score). One point per call uses the block's statistics as Python floats, and computes a new
block's from the 1-D window (`_full_one`: the same numpy reductions and sorts over the same values, then
the scalar arithmetic numpy does element-wise, so the same bits at a third of the calls; issue 18's
one-point target, tests/unit/test_anomaly_fast_path_unchanged.py).
"""


from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from watchkeeper.core.detectors.base import Detector

LOCAL = 32  # points of the local level (the median of the newest points before a block)
Z_HALF = 3.0  # score = z / (z + Z_HALF): z = 3 scores 0.5, z = 6 scores 0.67, z = 27 scores 0.9


class EventDetector(Detector):
    name = "event"
    PARAMS: ClassVar[dict[str, tuple[type, Any, str]]] = {
        "window": (int, 288, "most points in the window of the scales (mean/std, median/MAD)"),
        "min_points": (int, 20, "points needed in the window before a point is scored"),
        "holdoff": (int, 10, "a point scores only if its z is above every z of this many previous points"),
        "block": (int, 8, "points between refreshes of the mean and standard deviation"),
    }
    _state_fields: ClassVar[tuple[str, ...]] = ("buf", "zhist", "n")

    def __init__(self, window: int = 288, min_points: int = 20, holdoff: int = 10, block: int = 8) -> None:
        if not 2 <= min_points <= window or holdoff < 1 or block < 1:
            raise ValueError("need 2 <= min_points <= window, holdoff >= 1 and block >= 1")
        self.params = {"window": window, "min_points": min_points, "holdoff": holdoff, "block": block}
        # `ensemble` (ensemble.py) adds the calibrated consensus, scoring the same (counter-transformed) values
        self.calibrated: Detector | None = None
        self.window, self.min_points, self.holdoff, self.block = window, min_points, holdoff, block
        self.buf = np.full(window + block, np.nan)  # the newest points (NaN: not seen yet)
        self.zhist = np.zeros(holdoff)  # z of the newest points, for the hold-off
        self.chist = np.zeros(holdoff)  # `ensemble`: the larger of both members' z of the newest points
        self.n = 0
        self._cache: tuple[int, np.ndarray, tuple[float, ...]] | None = None  # block start, stats
        self._lazy: list[float] = []  # points scored one at a time, not yet in `buf`
        self._zlazy: list[float] = []  # their z, not yet in `zhist`
        self._ztail: list[float] | None = None  # the newest z's (zhist + _zlazy), for the scalar hold-off
        self._clazy: list[float] = []  # `ensemble`: as _zlazy and _ztail, for `chist`
        self._ctail: list[float] | None = None

    def state_fields(self, prefix: str = "") -> dict[str, Any]:
        self._flush()
        out = super().state_fields(prefix)
        if self.calibrated is not None:
            out.update(self.calibrated.state_fields(f"{prefix}calibrated."))
        return out

    def load_fields(self, fields: dict[str, Any], prefix: str = "") -> None:
        super().load_fields(fields, prefix)
        if self.calibrated is not None:
            self.calibrated.load_fields(fields, f"{prefix}calibrated.")
        self._cache, self._lazy, self._zlazy, self._ztail = None, [], [], None
        self._clazy, self._ctail = [], None

    def _flush(self) -> None:
        if self._lazy:
            self.buf = np.concatenate((self.buf, self._lazy))[-(self.window + self.block):]
            self.zhist = np.concatenate((self.zhist, self._zlazy))[-self.holdoff:]
            if self._clazy:
                self.chist = np.concatenate((self.chist, self._clazy))[-self.holdoff:]
            self._lazy, self._zlazy, self._clazy = [], [], []

    def _stats(self, windows: np.ndarray) -> np.ndarray:
        """Per row of ``windows`` (the points before a block; NaN = not seen yet), as columns: median of the
        last ``LOCAL`` points, robust scale, mean, standard deviation; NaN where a row has fewer than
        ``min_points`` points. Row by row, the same operations whatever the number of rows, so one batch
        and one point at a time agree to the bit. Full rows (the steady state) take a shorter path with
        the same arithmetic (a sum over a full row is the sum of the masked row)."""
        out = np.full((len(windows), 4), np.nan)
        count = np.count_nonzero(~np.isnan(windows), axis=1)
        W = windows.shape[1]
        full = count == W
        young = ~full & (count >= self.min_points)
        with np.errstate(over="ignore", invalid="ignore"):  # values near 1e308: overflow -> no opinion
            if full.any():
                out[full] = self._full_rows(np.ascontiguousarray(windows[full]))
            if young.any():
                out[young] = self._young_rows(np.ascontiguousarray(windows[young]), count[young])
        return out

    def _full_rows(self, w: np.ndarray) -> np.ndarray:
        W = w.shape[1]
        lo, hi = (W - 1) // 2, W // 2
        mean = w.sum(axis=1) / W
        sd = np.sqrt(((w - mean[:, None]) ** 2).sum(axis=1) / W)
        srt = np.sort(w, axis=1)
        med = 0.5 * (srt[:, lo] + srt[:, hi])
        dev = np.abs(w - med[:, None])
        srt = np.sort(dev, axis=1)
        mad = 0.5 * (srt[:, lo] + srt[:, hi])
        mean_abs = dev.sum(axis=1) / W
        local = np.sort(w[:, -LOCAL:], axis=1)
        local_med = 0.5 * (local[:, (LOCAL - 1) // 2] + local[:, LOCAL // 2])
        return _columns(w, mean, sd, mad, mean_abs, local_med)

    def _young_rows(self, w: np.ndarray, c: np.ndarray) -> np.ndarray:
        valid = ~np.isnan(w)
        mean = np.where(valid, w, 0.0).sum(axis=1) / c
        sd = np.sqrt(np.where(valid, (w - mean[:, None]) ** 2, 0.0).sum(axis=1) / c)
        med = _row_median(np.sort(w, axis=1), c)
        dev = np.abs(w - med[:, None])
        mad = _row_median(np.sort(dev, axis=1), c)
        mean_abs = np.where(valid, dev, 0.0).sum(axis=1) / c
        local = np.ascontiguousarray(w[:, -LOCAL:])
        local_med = _row_median(np.sort(local, axis=1), np.count_nonzero(~np.isnan(local), axis=1))
        return _columns(w, mean, sd, mad, mean_abs, local_med)

    def _block_stats(self, n0: int, ext: np.ndarray, n_points: int) -> tuple[np.ndarray, int]:
        """Stats of every block touched by points n0 .. n0 + n_points - 1 (``ext`` = buf + those points)."""
        W, B = self.window, self.block
        first = n0 // B
        starts = np.arange(first, (n0 + n_points - 1) // B + 1) * B
        if len(starts) == 1 and self._cache is not None and self._cache[0] == starts[0]:
            return self._cache[1], first
        offs = starts - W - n0 + len(self.buf)
        stats = self._stats(np.lib.stride_tricks.sliding_window_view(ext, W)[offs])
        self._cache = (int(starts[-1]), stats[-1:], tuple(float(v) for v in stats[-1]))
        return stats, first

    def _one_block_stats(self, start: int) -> tuple[int, np.ndarray, tuple[float, ...]]:
        """`_block_stats` of the block starting at point ``start`` (``self.n`` or, after a restart from a
        checkpoint, before it), for `p_one`.

        In the steady state (a full window) the row is computed by `_full_one` on the 1-D window with
        the same float operations as `_full_rows` on a one-row matrix, at a third of its numpy calls;
        a young series, or a window whose statistics overflow, takes the row path."""
        self._flush()
        W = self.window
        if start >= W:
            end = len(self.buf) - (self.n - start)  # the window: the W points before the block
            row = _full_one(self.buf[end - W : end])
            if row is not None:
                self._cache = (start, np.array([row]), row)
                return self._cache
        self._block_stats(self.n, np.concatenate((self.buf, [0.0])), 1)  # the point itself is not read
        assert self._cache is not None
        return self._cache

    def p_batch(self, ts: np.ndarray, values: np.ndarray) -> np.ndarray:
        self._flush()
        self._ztail = self._ctail = None
        n0, N, H = self.n, len(values), self.holdoff
        if N == 0:
            return np.empty(0)
        ext = np.concatenate((self.buf, values))
        stats, first = self._block_stats(n0, ext, N)
        st = stats[(n0 + np.arange(N)) // self.block - first]
        ready = ~np.isnan(st[:, 0])
        st = np.where(ready[:, None], st, 1.0)
        with np.errstate(invalid="ignore", over="ignore"):
            z = np.sqrt((np.abs(values - st[:, 0]) / st[:, 1]) * (np.abs(values - st[:, 2]) / st[:, 3]))
        z = np.where(ready & ~np.isnan(z), z, 0.0)  # NaN only from overflow (values near 1e308): no opinion
        zext = np.concatenate((self.zhist, z))
        before = np.lib.stride_tricks.sliding_window_view(zext[:-1], H).max(axis=1)
        kept = np.where(z > before, z, 0.0)
        if self.calibrated is not None:  # `ensemble`: the consensus' z counts where it beats both members' past
            zc = gauss_z(self.calibrated.p_batch(ts, values))
            cext = np.concatenate((self.chist, np.fmax(z, zc)))
            before = np.lib.stride_tricks.sliding_window_view(cext[:-1], H).max(axis=1)
            kept = np.fmax(kept, np.where((zc > before) & (zc > z), zc, 0.0))
            self.chist = cext[-H:]
        self.buf = ext[-len(self.buf):]
        self.zhist = zext[-H:]
        self.n += N
        return Z_HALF / (kept + Z_HALF)

    def p_one(self, ts: float, value: float) -> float:
        B = self.block
        start = self.n - self.n % B
        cache = self._cache
        if cache is None or cache[0] != start:
            cache = self._one_block_stats(start)
        med, rscale, mean, sd = cache[2]
        z = 0.0
        if med == med:
            z = math.sqrt((abs(value - med) / rscale) * (abs(value - mean) / sd))
            if z != z:
                z = 0.0
        kept_c = 0.0
        if self.calibrated is not None:  # as in p_batch
            zc = gauss_z_one(self.calibrated.p_one(ts, value))
            ctail = self._ctail
            if ctail is None:
                ctail = self._ctail = self.chist.tolist() + self._clazy
            zmax = z if z >= zc else zc
            if zc > max(ctail[-self.holdoff:]) and zc > z:
                kept_c = zc
            ctail.append(zmax)
            if len(ctail) > 4 * self.holdoff:
                del ctail[: -self.holdoff]
            self._clazy.append(zmax)
        tail = self._ztail
        if tail is None:  # the newest z's as Python floats (zhist, then the points not flushed yet)
            tail = self._ztail = self.zhist.tolist() + self._zlazy
        before = max(tail[-self.holdoff:])
        tail.append(z)
        if len(tail) > 4 * self.holdoff:
            del tail[: -self.holdoff]
        self._lazy.append(value)
        self._zlazy.append(z)
        self.n += 1
        kept = z if z > before else 0.0
        return Z_HALF / ((kept if kept >= kept_c else kept_c) + Z_HALF)


def _columns(w: np.ndarray, mean: np.ndarray, sd: np.ndarray, mad: np.ndarray, mean_abs: np.ndarray,
             local_med: np.ndarray) -> np.ndarray:
    """The stats columns, with the resolution (median non-zero step between consecutive values)."""
    step = np.abs(np.diff(w, axis=1))
    step = np.where(step > 0, step, np.nan)  # NaN: a repeated value, or a point not seen yet
    n_step = np.count_nonzero(~np.isnan(step), axis=1)
    resolution = np.where(n_step > 0, _row_median(np.sort(step, axis=1), np.maximum(n_step, 1)), 0.0)
    floor = np.maximum(1e-9 * np.abs(mean), 1e-12)
    robust = np.maximum(np.maximum(np.maximum(1.4826 * mad, 0.5 * mean_abs), resolution), floor)
    return np.stack((local_med, robust, mean, np.maximum(sd, floor)), axis=1)


def _full_one(w: np.ndarray) -> tuple[float, float, float, float] | None:
    """`_full_rows` then `_columns` of one full window (1-D, no NaN) as floats: the same operations
    (numpy's pairwise sums over the same contiguous values, sorts, then scalar IEEE arithmetic that numpy
    would do element-wise), so the same bits. None if a statistic is not finite (values near 1e308): the
    row path handles those (NaN propagation through np.maximum, which Python's max does not copy)."""
    W = len(w)
    lo, hi = (W - 1) // 2, W // 2
    mean = float(w.sum()) / W
    d = w - mean
    sd = math.sqrt(float((d * d).sum()) / W)
    srt = np.sort(w)
    med = 0.5 * (float(srt[lo]) + float(srt[hi]))
    dev = np.abs(w - med)
    mean_abs = float(dev.sum()) / W
    dev.sort()
    mad = 0.5 * (float(dev[lo]) + float(dev[hi]))
    local = np.sort(w[-LOCAL:])
    local_med = 0.5 * (float(local[(LOCAL - 1) // 2]) + float(local[LOCAL // 2]))
    step = np.abs(np.diff(w))
    step = step[step > 0]
    n_step = len(step)
    resolution = 0.0
    if n_step:
        step.sort()
        resolution = 0.5 * (float(step[(n_step - 1) // 2]) + float(step[n_step // 2]))
    if not (math.isfinite(mean) and math.isfinite(sd) and math.isfinite(mad) and math.isfinite(mean_abs)
            and math.isfinite(resolution) and math.isfinite(local_med)):
        return None
    floor = max(1e-9 * abs(mean), 1e-12)
    robust = max(max(max(1.4826 * mad, 0.5 * mean_abs), resolution), floor)
    return local_med, robust, mean, max(sd, floor)


def _row_median(srt: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Median of each row of a row-sorted array whose first ``count`` entries are the values (NaN last)."""
    rows = np.arange(len(srt))
    lo, hi = np.maximum(count - 1, 0) // 2, count // 2
    return 0.5 * (srt[rows, lo] + srt[rows, np.minimum(hi, srt.shape[1] - 1)])


# Acklam's rational approximation of the normal quantile (relative error < 1.2e-9), written once for
# arrays and once for floats with the same operations: z such that a Gaussian point is this rare,
# P(|N(0, 1)| >= z) = p. p = 1 gives 0.
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
      -3.066479806614716e01, 2.506628277459239e00)
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
      -1.328068155288572e01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
      4.374664141464968e00, 2.938163982698783e00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
_Q_LOW = 0.02425


def gauss_z(p: np.ndarray) -> np.ndarray:
    q = np.clip(0.5 * np.asarray(p, dtype=np.float64), 1e-300, 0.5)
    t = np.sqrt(-2.0 * np.log(np.minimum(q, _Q_LOW)))
    tail = -(((((_C[0] * t + _C[1]) * t + _C[2]) * t + _C[3]) * t + _C[4]) * t + _C[5]) / (
        (((_D[0] * t + _D[1]) * t + _D[2]) * t + _D[3]) * t + 1.0)
    u = q - 0.5
    r = u * u
    mid = -(((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * u / (
        ((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0)
    return np.where(q < _Q_LOW, tail, mid)


def gauss_z_one(p: float) -> float:
    q = min(max(0.5 * p, 1e-300), 0.5)
    if q < _Q_LOW:
        t = math.sqrt(-2.0 * math.log(q))
        return -(((((_C[0] * t + _C[1]) * t + _C[2]) * t + _C[3]) * t + _C[4]) * t + _C[5]) / (
            (((_D[0] * t + _D[1]) * t + _D[2]) * t + _D[3]) * t + 1.0)
    u = q - 0.5
    r = u * u
    return -(((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * u / (
        ((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0)
