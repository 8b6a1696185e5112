"""The default: `event`'s two-test z and a calibrated consensus, on one z scale, one detection per event.

Members: `event`'s own test (the geometric mean of a local robust z and the window z-score, event.py) and
the calibrated consensus (calibrated.py) with `robust` as its only member, recalibrated: its p-value
enters as the z of a Gaussian point as rare (P(|N(0, 1)| >= z) = p). `event`'s z and hold-off are kept
unchanged; the consensus' z adds a point where it is larger than `event`'s z at that point and than both
members' z's of the previous ``holdoff`` points. The score is `event`'s absolute scale z / (z + 3).

Why this shape, and not a combination of the members' p-values (the former ensemble, now `calibrated`):
on public labelled real series (bench/anomaly/evaluate_real.py, README) the p-value combination lost to
its own members under one global threshold (13 to 36 NAB standard against `event`'s 58 to 60): young
series cannot reach a calibrated threshold, autocorrelated and quantised series produce far more
"1 in 1,000" points than promised, and one incident costs once per point. Here:

- the ensemble flags every point `event` flags, with the same score, at any threshold: its detections
  include `event`'s; where the consensus is silent (young series: it waits 320 points; ordinary points)
  the ensemble IS `event`, bit for bit;
- the consensus adds points that are rare for THIS series by its own calibration (8 unlike sensors
  sharing one threshold, quiet series), at the Gaussian z of their rarity, once per event;
- seasonal, level-shift and flat-line members were measured in the consensus and left out: no gain
  (seasonal, level shift) or a loss (flat line) on every real corpus, and they cost time.

What it adds can still cost (a consensus point outside a labelled window), so "never below its best
member" is measured (docs/anomaly-detection.md, "Which detector is the default"), not proven.
"""

from __future__ import annotations

from typing import Any, ClassVar

from watchkeeper.core.detectors.calibrated import CalibratedDetector
from watchkeeper.core.detectors.event import EventDetector


class EnsembleDetector(EventDetector):
    name = "ensemble"
    PARAMS: ClassVar[dict[str, tuple[type, Any, str]]] = {
        **EventDetector.PARAMS,
        "window": (int, 288, "most points in the windows of `event`'s scales and of the consensus' members"),
    }
    _state_fields: ClassVar[tuple[str, ...]] = ("buf", "zhist", "chist", "n")

    def __init__(self, window: int = 288, min_points: int = 20, holdoff: int = 10, block: int = 8) -> None:
        super().__init__(window=window, min_points=min_points, holdoff=holdoff, block=block)
        self.calibrated = CalibratedDetector(window=window, seasonal=0, levelshift=0, flatline=0)
