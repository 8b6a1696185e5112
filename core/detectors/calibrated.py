"""The calibrated consensus: robust + seasonal + level-shift + flat-line, combined by their calibrated p-values.

`calibrated` was the ensemble until the ensemble had to beat its members on real labelled series. It is
offered alone for rules that want a per-series rarity ("0.999 = rarer than 1 in 1,000 points of this
series") rather than an absolute scale, and, with its robust member only (``seasonal=0, levelshift=0,
flatline=0``), it is the consensus member of `ensemble` (ensemble.py).

Why p-values: every member's p is already "how rare is this point for this series, by my measure", so
they are comparable without tuning. Combination, a weighted Bonferroni bound:

    p_bonf = min(1, min_i p_i / w_i),   sum w_i = 1

is never over-confident (P(p_bonf <= a) <= a whatever the members' dependence), and lets the most
surprised member speak. The weights say how much each member's far tail can be trusted (measured in
bench/anomaly): flat-line 0.3, level shift 0.1, and 0.6 for the point detector, which is the robust
member, or, while the seasonal member has a daily or weekly profile in use, robust 0.3 + seasonal 0.3
(a series with a pattern is better judged against its pattern; without one the seasonal member would
only repeat the robust one). The seasonal and level-shift members' calibrators do not extrapolate
their tails inside this consensus: their raw statistics are autocorrelated, and their extrapolated far
tails proved over-confident on wandering and weekly series.
Bonferroni alone is conservative (about w times too few alarms in the body), so the consensus re-ranks
-log p_bonf through its own calibrator WITHOUT tail extrapolation and keeps the smaller of the two:
calibrated where the series' history can tell, Bonferroni-bounded in the far tail beyond it.
Each member covers a failure mode the others miss: spikes and dips (robust), broken daily/weekly
patterns (seasonal), small persistent shifts and drifts (level shift), stuck values and stopped
counters (flat-line).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from watchkeeper.core.detectors.base import Detector
from watchkeeper.core.detectors.calibration import TailCalibrator
from watchkeeper.core.detectors.flatline import FlatlineDetector
from watchkeeper.core.detectors.level_shift import LevelShiftDetector
from watchkeeper.core.detectors.robust import RobustDetector
from watchkeeper.core.detectors.seasonal import SeasonalDetector

W_ROBUST, W_LEVEL, W_FLAT = 0.6, 0.1, 0.3
W_R_SEASONAL, W_SEASONAL = 0.3, 0.3  # while a seasonal profile is in use, robust shares its weight


class CalibratedDetector(Detector):
    name = "calibrated"
    PARAMS: ClassVar[dict[str, tuple[type, Any, str]]] = {
        "window": (int, 288, "points in the members' windows"),
        "halflife": (float, 20000.0, "half-life (points) of every calibration history"),
        "seasonal": (int, 1, "0: without the seasonal member"),
        "levelshift": (int, 1, "0: without the level-shift member"),
        "flatline": (int, 1, "0: without the flat-line member"),
    }
    _state_fields = ("robust", "seasonal", "levelshift", "flatline", "calibrator", "n")  # a member left out: None

    def __init__(self, window: int = 288, halflife: float = 20000.0, seasonal: int = 1, levelshift: int = 1,
                 flatline: int = 1) -> None:
        if not {seasonal, levelshift, flatline} <= {0, 1}:
            raise ValueError("seasonal, levelshift and flatline must be 0 or 1")
        self.params = {"window": window, "halflife": halflife, "seasonal": seasonal, "levelshift": levelshift,
                       "flatline": flatline}
        self.robust = RobustDetector(window=window, halflife=halflife)
        # the seasonal and level-shift members do not extrapolate their tails here (module docstring)
        self.seasonal = SeasonalDetector(window=window, halflife=halflife, only_seasonal=1) if seasonal else None
        self.levelshift = LevelShiftDetector(window=window, halflife=halflife) if levelshift else None
        if self.seasonal is not None:
            self.seasonal.calibrator.extrapolate = False
        if self.levelshift is not None:
            self.levelshift.calibrator.extrapolate = False
        self.flatline = FlatlineDetector(halflife=halflife) if flatline else None
        self.calibrator = TailCalibrator(halflife=halflife, extrapolate=False)
        self.learning = window  # until the members have a full window
        self.n = 0

    def p_batch(self, ts: np.ndarray, values: np.ndarray) -> np.ndarray:
        p_robust = self.robust.p_batch(ts, values)
        if self.seasonal is not None:
            p_seasonal = self.seasonal.p_batch(ts, values)
            p = np.where(self.seasonal.active, np.minimum(p_robust / W_R_SEASONAL, p_seasonal / W_SEASONAL),
                         p_robust / W_ROBUST)
        else:
            p = p_robust / W_ROBUST
        if self.levelshift is not None:
            p = np.minimum(p, self.levelshift.p_batch(ts, values) / W_LEVEL)
        if self.flatline is not None:
            p = np.minimum(p, self.flatline.p_batch(ts, values) / W_FLAT)
        learning = self.n + np.arange(len(p)) < self.learning
        self.n += len(p)
        p = np.where(learning, 1.0, p)
        return np.minimum(p, self.calibrator.p_batch(np.where(learning, np.nan, -np.log(p))))

    def p_one(self, ts: float, value: float) -> float:
        p_robust = self.robust.p_one(ts, value)
        p = p_robust / W_ROBUST
        if self.seasonal is not None:
            p_seasonal = self.seasonal.p_one(ts, value)
            if self.seasonal.active_one:
                p = min(p_robust / W_R_SEASONAL, p_seasonal / W_SEASONAL)
        if self.levelshift is not None:
            p = min(p, self.levelshift.p_one(ts, value) / W_LEVEL)
        if self.flatline is not None:
            p = min(p, self.flatline.p_one(ts, value) / W_FLAT)
        learning = self.n < self.learning
        self.n += 1
        if learning:
            return min(1.0, self.calibrator.p_one(math.nan))
        return min(p, self.calibrator.p_one(-math.log(p)))
