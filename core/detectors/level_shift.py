"""Level shifts and drifts: a multi-scale scan of robust-standardised residuals (a windowed CUSUM/GLR).

A shift of d robust standard deviations that persists m points makes the sum of the last m standardised
residuals grow like d*m, against a typical size of sqrt(m) for noise, so a shift too small for a point
detector (one sigma) still stands out after 16 or 64 points, and a slow drift after 64. Residuals are
clipped at +-``clip`` first, so a single spike cannot pass for a shift. Scales 1 (the point itself,
unclipped: the scan's shortest window, so a shift that starts with a jump is seen at once), 4, 16 and
64; each scale is divided by its own typical |sum| on this series (residuals of a wandering sensor are
autocorrelated and their long sums routinely large), and the statistic is the largest ratio. The sums
come from one cumsum per call, which is why a windowed scan was chosen over the recursive CUSUM (that
needs a reset rule and a loop per point).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from core.detectors.base import Detector
from core.detectors.calibration import TailCalibrator
from core.detectors.rolling_baseline import RollingBaseline

_SCALES = (1, 4, 16, 64)  # scale 1 is the point itself, unclipped
_SCALES_ARR = np.array(_SCALES, dtype=np.float64)
_SPREAD_HALFLIFE = 4000.0  # points


class LevelShiftDetector(Detector):
    name = "levelshift"
    PARAMS: ClassVar[dict[str, tuple[type, Any, str]]] = {
        "window": (int, 288, "points in the reference median/MAD window"),
        "block": (int, 32, "points between reference refreshes"),
        "clip": (float, 4.0, "residuals are clipped at +-clip robust sigmas"),
        "halflife": (float, 20000.0, "half-life (points) of the calibration history"),
    }
    _state_fields = ("baseline", "calibrator", "tail", "spread", "block_sum", "n", "n_valid", "n_spread")

    def __init__(self, window: int = 288, block: int = 32, clip: float = 4.0, halflife: float = 20000.0) -> None:
        self.params = {"window": window, "block": block, "clip": clip, "halflife": halflife}
        self.clip = clip
        self.baseline = RollingBaseline(window, block)
        self.calibrator = TailCalibrator(halflife=halflife)
        self.tail = np.zeros(max(_SCALES))  # last standardised residuals, oldest first
        self.block = block
        self.spread = np.zeros(len(_SCALES))  # typical |window sum| per scale (EW over blocks); 0 = unknown
        self.block_sum = np.zeros(len(_SCALES))  # sum of |window sum| in the current block
        self.n = 0
        self.n_valid = 0  # points with a known residual so far (window sums are whole after 64 of them)
        self.n_spread = 0  # blocks learnt into `spread`

    def raw_batch(self, values: np.ndarray) -> np.ndarray:
        med, scale = self.baseline.stats(values)
        z_point = np.abs(values - med) / scale
        learning = np.isnan(z_point)
        z = np.where(learning, 0.0, np.clip((values - med) / scale, -self.clip, self.clip))
        M = len(self.tail)
        ext = np.concatenate((self.tail, z))
        cs = np.concatenate(([0.0], np.cumsum(ext)))
        end = np.arange(M, M + len(z)) + 1
        sums = np.stack([np.where(learning, 0.0, z_point)] + [np.abs(cs[end] - cs[end - m]) for m in _SCALES[1:]])
        self.tail = ext[-M:]
        raw = np.max(sums / self._spreads(sums, learning), axis=0)
        return np.where(learning, np.nan, raw)

    def _spreads(self, sums: np.ndarray, learning: np.ndarray) -> np.ndarray:
        """Per point and scale, the series' typical |window sum| as of its block start (frozen in blocks).

        Residuals of a wandering process (a sensor, a queue) are autocorrelated: their 64-point sums
        are routinely large. Dividing each scale by its own typical size makes the scales comparable
        and makes "large" mean "large for this series"; the calibrator then ranks the result.
        """
        B, N, M = self.block, sums.shape[1], max(_SCALES)
        out = np.empty_like(sums)
        decay = 0.5 ** (B / _SPREAD_HALFLIFE)
        n_valid = self.n_valid + np.cumsum(~learning)
        whole = n_valid > M  # window sums made only of known residuals
        i = 0
        while i < N:
            j = min(N, i + B - self.n % B)
            out[:, i:j] = (self.spread if self.n_spread else np.sqrt(_SCALES_ARR) * 0.8)[:, None]
            self.block_sum += sums[:, i:j][:, whole[i:j]].sum(axis=1)
            self.n += j - i
            if self.n % B == 0 and self.block_sum.any():
                w = max(1 - decay, 1 / (self.n_spread + 1))  # a plain mean at first, then exponential
                self.spread = (1 - w) * self.spread + w * self.block_sum / B
                self.n_spread += 1
                self.block_sum[:] = 0.0
            i = j
        self.n_valid = int(n_valid[-1]) if N else self.n_valid
        return np.maximum(out, 1e-9)

    def p_batch(self, ts: np.ndarray, values: np.ndarray) -> np.ndarray:
        return self.calibrator.p_batch(self.raw_batch(values))
