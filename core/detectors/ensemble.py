"""The ensemble: robust + seasonal + level-shift + flat-line, combined by their calibrated p-values.

Why p-values: every member's p is already "how rare is this point for this series, by my measure", so
the most surprised member speaks: P = min(p_i). The minimum of four p-values is not itself a p-value
(it is too small about four times too often), so -log P goes through one more calibrator, which makes
the ensemble's score exactly as calibrated as its members'. Each member covers a failure mode the others
miss: spikes (robust), broken daily/weekly patterns (seasonal), small persistent shifts and drifts
(level shift), stuck values and stopped counters (flat-line).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from core.detectors.base import Detector
from core.detectors.calibration import TailCalibrator
from core.detectors.flatline import FlatlineDetector
from core.detectors.level_shift import LevelShiftDetector
from core.detectors.robust import RobustDetector
from core.detectors.seasonal import SeasonalDetector


class EnsembleDetector(Detector):
    name = "ensemble"
    PARAMS: ClassVar[dict[str, tuple[type, Any, str]]] = {
        "window": (int, 288, "points in the robust and seasonal windows (level shift uses 2x)"),
        "halflife": (float, 20000.0, "half-life (points) of every calibration history"),
    }
    _state_fields = ("robust", "seasonal", "levelshift", "flatline", "calibrator", "n")

    def __init__(self, window: int = 288, halflife: float = 20000.0) -> None:
        self.params = {"window": window, "halflife": halflife}
        self.robust = RobustDetector(window=window, halflife=halflife)
        self.seasonal = SeasonalDetector(window=window, halflife=halflife)
        self.levelshift = LevelShiftDetector(window=2 * window, halflife=halflife)
        self.flatline = FlatlineDetector(halflife=halflife)
        self.calibrator = TailCalibrator(halflife=halflife)
        self.learning = 2 * window  # until the slowest member (level shift) has a full window
        self.n = 0

    def members(self) -> tuple[Detector, ...]:
        return (self.robust, self.seasonal, self.levelshift, self.flatline)

    def p_batch(self, ts: np.ndarray, values: np.ndarray) -> np.ndarray:
        p = self.robust.p_batch(ts, values)
        for member in self.members()[1:]:
            p = np.minimum(p, member.p_batch(ts, values))
        raw = np.where(self.n + np.arange(len(p)) < self.learning, np.nan, -np.log(p))
        self.n += len(p)
        return self.calibrator.p_batch(raw)
