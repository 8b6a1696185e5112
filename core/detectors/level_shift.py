"""Level shifts and drifts: a multi-scale scan of robust-standardised residuals (a windowed CUSUM/GLR).

A shift of d robust standard deviations that persists m points makes the sum of the last m standardised
residuals grow like d*sqrt(m) after division by sqrt(m), so a shift too small for a point detector (one
sigma) still stands out after 16 or 64 points, and a slow drift after 64. Residuals are clipped at
+-``clip`` first, so a single spike cannot pass for a shift. Scales 4, 16 and 64 cover fast and slow
changes; the statistic is the largest |sum|/sqrt(m). The sums are computed with one cumsum per call,
which is why a windowed scan was chosen over the recursive CUSUM (that needs a reset rule and a loop).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from core.detectors.base import Detector
from core.detectors.calibration import TailCalibrator
from core.detectors.rolling_baseline import RollingBaseline

_SCALES = (4, 16, 64)


class LevelShiftDetector(Detector):
    name = "levelshift"
    PARAMS: ClassVar[dict[str, tuple[type, Any, str]]] = {
        "window": (int, 576, "points in the reference median/MAD window"),
        "block": (int, 32, "points between reference refreshes"),
        "clip": (float, 4.0, "residuals are clipped at +-clip robust sigmas"),
        "halflife": (float, 20000.0, "half-life (points) of the calibration history"),
    }
    _state_fields = ("baseline", "calibrator", "tail")

    def __init__(self, window: int = 576, block: int = 32, clip: float = 4.0, halflife: float = 20000.0) -> None:
        self.params = {"window": window, "block": block, "clip": clip, "halflife": halflife}
        self.clip = clip
        self.baseline = RollingBaseline(window, block)
        self.calibrator = TailCalibrator(halflife=halflife)
        self.tail = np.zeros(max(_SCALES))  # last standardised residuals, oldest first

    def raw_batch(self, values: np.ndarray) -> np.ndarray:
        med, scale = self.baseline.stats(values)
        z = np.clip((values - med) / scale, -self.clip, self.clip)
        learning = np.isnan(z)
        z = np.where(learning, 0.0, z)
        M = len(self.tail)
        ext = np.concatenate((self.tail, z))
        cs = np.concatenate(([0.0], np.cumsum(ext)))
        end = np.arange(M, M + len(z)) + 1
        raw = np.zeros(len(z))
        for m in _SCALES:
            raw = np.maximum(raw, np.abs(cs[end] - cs[end - m]) / np.sqrt(m))
        self.tail = ext[-M:]
        return np.where(learning, np.nan, raw)

    def p_batch(self, ts: np.ndarray, values: np.ndarray) -> np.ndarray:
        return self.calibrator.p_batch(self.raw_batch(values))
