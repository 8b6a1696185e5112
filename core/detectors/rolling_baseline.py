"""Robust location and scale of the last ``window`` points, refreshed every ``block`` points.

Median and MAD rather than mean and standard deviation because one spike moves a mean and inflates a
standard deviation for the whole window (the rolling z-score's blind spot after every incident), and
does neither to a median. The scale has floors: 0.5 x mean absolute deviation (a series that is constant
most of the time has MAD 0 but still moves sometimes), 1e-9 x |median| (float rounding, far below any
real noise) and 1e-12.

Until ``window`` points have been seen the baseline is unknown (NaN): a half-filled window gives
erratic scales, and detectors would learn those erratic scores as "normal" (see calibration.py).

Memory: a ring of ``window + block`` floats. Statistics for every block of a call are computed at once
(one K x window median), so the per-point cost is numpy-fast and independent of the batch cut. One
point at a time (`stat_one`) inside a block returns the block's cached statistics and keeps the point
in a Python list, written into the ring when the next block's statistics need it (or the state is read);
those are then computed from the 1-D window (`_one_block`, the same numpy reductions, same bits).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from watchkeeper.core.detectors.base import Stateful

MIN_POINTS = 8  # smallest window accepted


class RollingBaseline(Stateful):
    _state_fields = ("buf", "n")

    def __init__(self, window: int = 288, block: int = 32, location: int | None = None) -> None:
        if window < MIN_POINTS or block < 1:
            raise ValueError(f"window must be >= {MIN_POINTS} and block >= 1")
        self.window, self.block = window, block
        self.location = min(window, max(MIN_POINTS, location or window // 4))
        self.buf = np.full(window + block, np.nan)
        self.n = 0
        # (block start, med, scale) of the current block, as arrays and as floats
        self._cache: tuple[int, np.ndarray, np.ndarray, float, float] | None = None
        self._lazy: list[float] = []  # the newest points, not yet in `buf`

    def load_fields(self, fields: dict[str, Any], prefix: str = "") -> None:
        super().load_fields(fields, prefix)
        self._cache = None
        self._lazy = []

    def state_fields(self, prefix: str = "") -> dict[str, Any]:
        self._flush()
        return super().state_fields(prefix)

    def _flush(self) -> None:
        if self._lazy:
            self.buf = np.concatenate((self.buf, self._lazy))[-(self.window + self.block):]
            self._lazy = []

    def stat_one(self, x: float) -> tuple[float, float]:
        """`stats` of one point, as floats."""
        cache = self._cache
        start = self.n - self.n % self.block
        if cache is None or cache[0] != start:
            if start < self.window:  # no baseline yet: the general path (NaN statistics)
                med, scale = self.stats(np.array([x]))
                return float(med[0]), float(scale[0])
            cache = self._one_block(start)
        self._lazy.append(x)
        self.n += 1
        return cache[3], cache[4]

    def _one_block(self, start: int) -> tuple[int, np.ndarray, np.ndarray, float, float]:
        """`stats`' statistics of the block starting at point ``start`` (<= ``self.n``: a restart from a
        checkpoint may land mid-block), from the 1-D window: the same numpy reductions over the same
        contiguous values as the one-row matrix of `stats`, so the same bits, at a third of the calls."""
        self._flush()
        W = self.window
        end = len(self.buf) - (self.n - start)  # the window: the W points before the block
        win = self.buf[end - W : end]
        med = float(np.median(win))
        dev = np.abs(win - med)
        scale = float(np.maximum.reduce([1.4826 * np.median(dev), 0.5 * dev.mean(), 1e-9 * abs(med), 1e-12]))
        loc = float(np.median(win[W - self.location :]))
        self._cache = (start, np.array([loc]), np.array([scale]), loc, scale)
        return self._cache

    def stats(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per point of ``x``: location and scale of the window that ends at the start of the point's block.

        The location is the median of only the last ``location`` points (default a quarter of the window):
        after a lasting change (a level shift, a weekend) the baseline catches up in ``location / 2``
        points instead of ``window / 2``, which is what keeps a detector from alarming for hours after
        an incident has become the new normal. The scale still uses the whole window (more stable).
        """
        W, B = self.window, self.block
        R = W + B
        self._flush()
        n0, N = self.n, len(x)
        ext = np.concatenate((self.buf, x))
        first = n0 // B
        starts = np.arange(first, (n0 + N - 1) // B + 1) * B
        offs = starts - W - n0 + R
        if len(starts) == 1 and self._cache is not None and self._cache[0] == starts[0]:
            med, scale = self._cache[1], self._cache[2]  # many small calls inside one block
        else:
            med = np.full(len(starts), np.nan)
            scale = np.full(len(starts), np.nan)
            full = starts >= W
            if full.any():
                win = np.lib.stride_tricks.sliding_window_view(ext, W)[offs[full]]
                _, scale[full] = _robust(win)
                med[full] = np.median(win[:, W - self.location :], axis=1)
            self._cache = (int(starts[-1]), med[-1:], scale[-1:], float(med[-1]), float(scale[-1]))
        rows = (n0 + np.arange(N)) // B - first
        self.buf = ext[-R:]
        self.n += N
        return med[rows], scale[rows]


def _robust(win: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    med = np.median(win, axis=1)
    dev = np.abs(win - med[:, None])
    mad = np.median(dev, axis=1)
    scale = np.maximum.reduce([1.4826 * mad, 0.5 * dev.mean(axis=1), 1e-9 * np.abs(med), np.full_like(med, 1e-12)])
    return med, scale


def robust_1d(a: np.ndarray) -> tuple[float, float]:
    """`_robust` for one window, with a single partition per statistic (np.median's overhead dominates)."""
    k = len(a) // 2
    med = float(np.partition(a, k)[k])
    dev = np.abs(a - med)
    mad = float(np.partition(dev, k)[k])
    return med, max(1.4826 * mad, 0.5 * float(dev.sum()) / len(a), 1e-9 * abs(med), 1e-12)
