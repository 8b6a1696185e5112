"""The robust rolling baseline: distance from the rolling median in rolling-MAD units, calibrated.

Catches spikes, dips and sudden level changes on any series without a seasonal pattern; it is the
rolling z-score done right (median/MAD instead of mean/std, a floor on the scale, a calibrated score).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from watchkeeper.core.detectors.base import Detector
from watchkeeper.core.detectors.calibration import TailCalibrator
from watchkeeper.core.detectors.rolling_baseline import RollingBaseline


class RobustDetector(Detector):
    name = "robust"
    PARAMS: ClassVar[dict[str, tuple[type, Any, str]]] = {
        "window": (int, 288, "points in the rolling median/MAD window"),
        "block": (int, 32, "points between baseline refreshes"),
        "halflife": (float, 20000.0, "half-life (points) of the calibration history"),
    }
    _state_fields = ("baseline", "calibrator")

    def __init__(self, window: int = 288, block: int = 32, halflife: float = 20000.0) -> None:
        self.params = {"window": window, "block": block, "halflife": halflife}
        self.baseline = RollingBaseline(window, block)
        self.calibrator = TailCalibrator(halflife=halflife)

    def raw_batch(self, values: np.ndarray) -> np.ndarray:
        med, scale = self.baseline.stats(values)
        return np.abs(values - med) / scale  # NaN while the window fills: no opinion yet

    def p_batch(self, ts: np.ndarray, values: np.ndarray) -> np.ndarray:
        return self.calibrator.p_batch(self.raw_batch(values))

    def p_one(self, ts: float, value: float) -> float:
        med, scale = self.baseline.stat_one(value)
        return self.calibrator.p_one(abs(value - med) / scale)
