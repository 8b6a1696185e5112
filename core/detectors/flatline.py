"""Flat lines and stopped counters: how long the value has not changed, compared with this series' past.

A stuck sensor, a dead exporter re-sending its last value, a counter that stopped: all show as a run of
identical values. The raw statistic is the current run length in points; the calibrator decides how
rare that run is for this series (a noisy series never repeats a value, a quantised one often does).
A run longer than ``adapt`` points is accepted as the new normal and scores 0 again, so a metric that
is constant by nature does not alarm forever.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from watchkeeper.core.detectors.base import Detector
from watchkeeper.core.detectors.calibration import TailCalibrator


class FlatlineDetector(Detector):
    name = "flatline"
    PARAMS: ClassVar[dict[str, tuple[type, Any, str]]] = {
        "adapt": (int, 1000, "a run longer than this many points is the new normal"),
        "halflife": (float, 20000.0, "half-life (points) of the calibration history"),
    }
    _state_fields = ("calibrator", "last", "run", "n")

    def __init__(self, adapt: int = 1000, halflife: float = 20000.0) -> None:
        self.params = {"adapt": adapt, "halflife": halflife}
        self.adapt = adapt
        self.calibrator = TailCalibrator(halflife=halflife)
        self.last = 0.0
        self.run = 0
        self.n = 0

    def raw_batch(self, values: np.ndarray) -> np.ndarray:
        prev = np.concatenate(([self.last], values[:-1]))
        same = values == prev
        if self.n == 0:
            same[0] = False
        idx = np.arange(len(values))
        last_break = np.maximum.accumulate(np.where(same, -1, idx))
        run = np.where(last_break >= 0, idx - last_break, idx + 1 + self.run).astype(np.float64)
        self.last = float(values[-1])
        self.run = int(run[-1])
        self.n += len(values)
        return np.where(run > self.adapt, 0.0, run)

    def p_batch(self, ts: np.ndarray, values: np.ndarray) -> np.ndarray:
        return self.calibrator.p_batch(self.raw_batch(values))

    def p_one(self, ts: float, value: float) -> float:
        self.run = self.run + 1 if value == self.last and self.n else 0
        self.last = value
        self.n += 1
        return self.calibrator.p_one(0.0 if self.run > self.adapt else float(self.run))
