"""Turning a detector's raw statistic into a calibrated tail probability, per series, as it streams.

Why: a raw z of 6 is routine on a spiky latency series and unheard of on a flat CPU series, yet users set
ONE threshold. So each detector's raw statistic r is compared with the distribution of its own past raw
values on the same series (its running null):

    p(r) = P(past raw >= r)          score = 1 - p

so ``score >= 0.99`` means "rarer than 1 in 100 of this series' points", whatever the series looks like.

How, in O(1) memory: a histogram of g = log1p(r), with 320 fine bins of 1/64 for g <= 5 (r <= 147,
where a series' raw values usually live, often concentrated in a narrow band) and 120 of 1/8 above (up
to g = 20, r = 5e8),
its counts decayed with a half-life of ``halflife`` points so it follows slow regime changes. Inside a
bin the count is interpolated linearly. Where the empirical tail is too thin to trust (fewer than 5
decayed counts at or above r), an exponential tail in g, i.e. a Pareto tail in r, fitted on the 95% and
99.5% quantiles (a two-quantile peaks-over-threshold fit), extrapolates, so that extreme points keep
being ordered (1 in 10^4, 1 in 10^6...) instead of all saturating at 1 - 1/n. A +1 prior in the
empirical estimate keeps the empirical part from calling anything 1-in-1000 rare after 50 points; a
young series (30 to 400 points learnt) gets its tail fitted on its median and 90% quantile instead, so
a 20-sigma spike in the first hours is still called rare, by extrapolation.

A NaN raw value means "no opinion yet" (a detector still learning): it scores p = 1 and is not
learnt, so the noisy statistics of a half-filled window do not pollute the series' null.

The histogram is frozen within blocks of ``block`` points and updated at block ends, so a whole call is
computed at once with numpy (block-by-block histograms via one 2-D bincount and a decayed cumsum),
exactly as if it had been fed point by point in blocks. One point at a time (`p_one`) reads the
current block's row of the model as Python floats, and the histogram is updated, by the same numpy
code, when the block's last point arrives.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from watchkeeper.core.detectors.base import Stateful

_TAIL_HI = 0.05  # quantile levels of the two-point tail fit
_TAIL_LO = 0.005
_MIN_FIT = 400.0  # decayed count needed before the tail fit on the 95% / 99.5% quantiles is trusted
_YOUNG_HI, _YOUNG_LO = 0.5, 0.1  # before that, a young series' tail is fitted on its median and 90%
_MIN_YOUNG = 30.0
_MIN_EMPIRICAL = 5.0  # counts at or above r needed to trust the empirical tail
_FINE_BINS, _FINE_PER_G, _G_SPLIT = 320, 64.0, 5.0
_COARSE_BINS, _COARSE_PER_G = 120, 8.0
_MAX_CALL = 65536  # points per internal step: bounds the decay exponents and the block matrix


class TailCalibrator(Stateful):
    """Raw statistic (>= 0, larger = more anomalous) -> tail probability under the series' own history."""

    _state_fields = ("counts", "pending", "n")

    def __init__(self, block: int = 64, halflife: float = 20000.0, extrapolate: bool = True) -> None:
        self.block, self.halflife, self.bins = block, halflife, _FINE_BINS + _COARSE_BINS
        self.extrapolate = extrapolate
        self.counts = np.zeros(self.bins)
        self.pending = np.zeros(block)
        self.n = 0
        # the frozen model of the current block, so many small calls do not rebuild it: (block id, arrays)
        self._cache: tuple[int, tuple[np.ndarray, ...]] | None = None
        self._scalar: _ScalarRow | None = None  # the same row as Python scalars, for `p_one`

    def p_batch(self, raw: np.ndarray) -> np.ndarray:
        if len(raw) <= _MAX_CALL:
            return self._p_batch(raw)
        return np.concatenate([self._p_batch(raw[i : i + _MAX_CALL]) for i in range(0, len(raw), _MAX_CALL)])

    def _p_batch(self, raw: np.ndarray) -> np.ndarray:
        B, nb = self.block, self.bins
        npend = self.n % B
        allr = np.concatenate((self.pending[:npend], np.maximum(raw, 0.0)))
        m = len(allr)
        k_done = m // B
        known = ~np.isnan(allr)
        g_all = np.log1p(np.where(known, allr, 0.0))
        u_all = _to_bin(g_all)
        b_all = np.minimum(u_all.astype(np.int64), nb - 1)
        frac_all = np.clip(u_all - b_all, 0.0, 1.0)

        counts = self._block_counts(b_all, known, k_done)
        block_id = self.n // B
        if k_done == 0 and self._cache is not None and self._cache[0] == block_id:
            tail, total, g_hi, beta, hi, fit = self._cache[1]
        else:
            tail, total, g_hi, beta, hi, fit = self._rows_model(counts)

        rows = (npend + np.arange(len(raw))) // B
        b = b_all[npend:]
        fr = frac_all[npend:]
        g = g_all[npend:]
        tail_ge = tail[rows, b + 1] + (1.0 - fr) * (tail[rows, b] - tail[rows, b + 1])
        p = (tail_ge + 1.0) / (total[rows] + 1.0)
        if self.extrapolate:
            over = g - g_hi[rows]
            use = fit[rows] & (tail_ge < _MIN_EMPIRICAL) & (over > 0)
            if use.any():
                p_tail = hi[rows] * np.exp(-np.maximum(over, 0.0) / beta[rows])
                p = np.where(use, np.minimum(p, p_tail), p)

        last = slice(k_done, k_done + 1)
        self._cache = ((self.n + len(raw)) // B, (tail[last], total[last], g_hi[last], beta[last], hi[last],
                                                  fit[last]))
        p = np.where(known[npend:], p, 1.0)
        self.counts = counts[k_done]
        self.pending[: m - k_done * B] = allr[k_done * B :]
        self.pending[m - k_done * B :] = 0.0  # no leftovers of past blocks: the state bytes do not depend on the cut
        self.n += len(raw)
        return np.clip(p, 1e-15, 1.0)

    def _block_counts(self, b_all: np.ndarray, known: np.ndarray, k_done: int) -> np.ndarray:
        """Rows of frozen counts: the current ones, then after each of the ``k_done`` blocks completed by
        the points whose bins are ``b_all`` (pending points first; ``known``: not NaN)."""
        B, nb = self.block, self.bins
        counts = np.empty((k_done + 1, nb))
        counts[0] = self.counts
        if k_done:
            blk = np.repeat(np.arange(k_done), B)
            hist = np.bincount(blk * nb + b_all[: k_done * B], weights=known[: k_done * B],
                               minlength=k_done * nb).reshape(k_done, nb)
            r = 0.5 ** (B / self.halflife)
            # one block after the other, the same float operations whether the blocks came in one call or
            # one point at a time: a closed form (decayed cumsum) differs in the last bits, and the model's
            # thresholds (counts >= 30, tail >= 5) turned such bits into different scores (issue 18)
            for k in range(k_done):
                counts[k + 1] = counts[k] * r + hist[k]
        return counts

    def p_one(self, raw: float) -> float:
        """`p_batch` of one raw value, with Python floats (the live path: ~1 us instead of ~70)."""
        B = self.block
        npend = self.n % B
        row = self._scalar
        if row is None or row.block_id != self.n // B:
            row = self._scalar_row()
        known = raw == raw
        if known:
            raw = raw if raw > 0.0 else 0.0
            g = math.log1p(raw)
            u = g * _FINE_PER_G if g <= _G_SPLIT else _FINE_BINS + (g - _G_SPLIT) * _COARSE_PER_G
            b = self.bins - 1 if u >= self.bins - 1 else int(u)
            fr = min(max(u - b, 0.0), 1.0)
            tail = row.tail
            above = tail[b + 1]
            tail_ge = above + (1.0 - fr) * (tail[b] - above)
            p = (tail_ge + 1.0) / (row.total + 1.0)
            if row.fit and tail_ge < _MIN_EMPIRICAL and g > row.g_hi:
                p = min(p, row.hi * math.exp(-(g - row.g_hi) / row.beta))
            p = min(max(p, 1e-15), 1.0)
        else:
            p = 1.0
        self.pending[npend] = raw
        self.n += 1
        if npend + 1 == B:  # the block is complete: learn it, as `p_batch` does
            pend = self.pending
            ok = ~np.isnan(pend)
            u_all = _to_bin(np.log1p(np.where(ok, pend, 0.0)))
            self.counts = self._block_counts(np.minimum(u_all.astype(np.int64), self.bins - 1), ok, 1)[1]
            pend[:] = 0.0
            self._cache = self._scalar = None
        return p

    def _scalar_row(self) -> _ScalarRow:
        block_id = self.n // self.block
        if self._cache is None or self._cache[0] != block_id:
            self._cache = (block_id, self._rows_model(self.counts[None, :]))
        tail, total, g_hi, beta, hi, fit = self._cache[1]
        use_fit = self.extrapolate and bool(fit[0])
        self._scalar = _ScalarRow(block_id, tail[0].tolist(), float(total[0]), float(g_hi[0]), float(beta[0]),
                                  float(hi[0]), use_fit)
        return self._scalar

    def _rows_model(self, counts: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per row of frozen counts: tail sums, total, and the tail fit (g_hi, beta, level, usable)."""
        nb = self.bins
        tail = np.zeros((len(counts), nb + 1))
        tail[:, :nb] = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1]
        total = tail[:, 0]
        mature = total >= _MIN_FIT
        hi = np.where(mature, _TAIL_HI, _YOUNG_HI)
        fit = total >= _MIN_YOUNG
        if not (self.extrapolate and fit.any()):
            zeros = np.zeros(len(counts))
            return tail, total, zeros, zeros + 1.0, hi, np.zeros(len(counts), dtype=bool)
        lo = np.where(mature, _TAIL_LO, _YOUNG_LO)
        g_hi = _to_g(self._quantile(tail, counts, total, hi))
        g_lo = _to_g(self._quantile(tail, counts, total, lo))
        beta = (g_lo - g_hi) / np.log(hi / lo)
        # a degenerate fit (both quantiles in the same narrow band: a discrete raw statistic such as a
        # run length) says nothing about the tail: keep the empirical estimate
        fit &= beta > 1 / 64
        return tail, total, g_hi, np.maximum(beta, 1 / 64), hi, fit

    def load_fields(self, fields: dict[str, Any], prefix: str = "") -> None:
        super().load_fields(fields, prefix)
        self._cache = self._scalar = None

    @staticmethod
    def _quantile(tail: np.ndarray, counts: np.ndarray, total: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """Per row, the position (bin units) above which a fraction ``alpha`` of the mass lies."""
        level = alpha * total
        j = np.maximum((tail > level[:, None]).sum(axis=1), 1)  # tail is non-increasing along bins
        idx = np.arange(len(total))
        above = tail[idx, j - 1]
        in_bin = np.maximum(counts[idx, np.minimum(j - 1, counts.shape[1] - 1)], 1e-300)
        return (j - 1) + np.clip((above - level) / in_bin, 0.0, 1.0)


class _ScalarRow:
    """One block's frozen model as Python scalars (see `TailCalibrator._rows_model`)."""

    __slots__ = ("beta", "block_id", "fit", "g_hi", "hi", "tail", "total")

    def __init__(self, block_id: int, tail: list[float], total: float, g_hi: float, beta: float, hi: float,
                 fit: bool) -> None:
        self.block_id, self.tail, self.total = block_id, tail, total
        self.g_hi, self.beta, self.hi, self.fit = g_hi, beta, hi, fit


def _to_bin(g: np.ndarray) -> np.ndarray:
    """g = log1p(raw) -> fractional bin position (fine below g = 5, coarse above)."""
    return np.where(g <= _G_SPLIT, g * _FINE_PER_G, _FINE_BINS + (g - _G_SPLIT) * _COARSE_PER_G)


def _to_g(u: np.ndarray) -> np.ndarray:
    return np.where(u <= _FINE_BINS, u / _FINE_PER_G, _G_SPLIT + (u - _FINE_BINS) / _COARSE_PER_G)
