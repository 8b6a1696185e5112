"""The reference detector: rolling z-score over the last ``window`` points (default 288, a day of 5 min).

Kept as the yardstick every other detector is measured against. Mean and standard deviation of the
previous ``window`` points; the score is the two-sided Gaussian probability erf(|z|/sqrt 2), which is
what "3 sigma" assumes. It is deliberately NOT calibrated per series: that is the baseline's weakness.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from watchkeeper.core.detectors.base import Detector


class ZScoreDetector(Detector):
    name = "zscore"
    PARAMS: ClassVar[dict[str, tuple[type, Any, str]]] = {
        "window": (int, 288, "points in the rolling mean/std window"),
    }
    _state_fields = ("buf", "n")
    counter_aware = False  # the reference is the textbook rolling z-score, nothing added

    def __init__(self, window: int = 288) -> None:
        if window < 2:
            raise ValueError("window must be >= 2")
        self.params = {"window": window}
        self.window = window
        self.buf = np.zeros(window)
        self.n = 0

    def p_batch(self, ts: np.ndarray, values: np.ndarray) -> np.ndarray:
        W, N, n0 = self.window, len(values), self.n
        ext = np.concatenate((self.buf, values))
        ref = ext[W - 1] if n0 else values[0]
        d = ext - ref
        cs = np.concatenate(([0.0], np.cumsum(d)))
        cs2 = np.concatenate(([0.0], np.cumsum(d * d)))
        end = np.arange(W, W + N)  # window of point i is ext[end - W : end]
        count = np.minimum(n0 + np.arange(N), W).astype(np.float64)
        start = end - count.astype(np.int64)
        s, s2 = cs[end] - cs[start], cs2[end] - cs2[start]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s / count
            var = np.maximum(s2 / count - mean * mean, 0.0)
            z = np.abs(d[W:] - mean) / np.sqrt(var)
        z = np.where(count < 2, 0.0, z)
        z = np.where(np.isnan(z), 0.0, z)  # 0/0: the value equals a constant window
        self.buf = ext[-W:]
        self.n += N
        return np.clip(_erfc(z / np.sqrt(2.0)), 0.0, 1.0)


def _erfc(x: np.ndarray) -> np.ndarray:
    """erfc for x >= 0 (Numerical Recipes erfcc, relative error < 1.2e-7); numpy has no vectorised erf."""
    x = np.minimum(x, 1e6)
    t = 1.0 / (1.0 + 0.5 * x)
    poly = -x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    return t * np.exp(poly)
