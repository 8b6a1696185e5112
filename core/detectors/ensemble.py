"""The ensemble: `event`'s two-test z and the calibrated consensus, on one z scale, one detection per event.

Members: `event`'s own test (the geometric mean of a local robust z and the window z-score, event.py) and
the calibrated consensus of robust + seasonal + level-shift + flat-line (calibrated.py), whose p-value
enters as the z of a Gaussian point as rare (P(|N(0, 1)| >= z) = p). Per point, the larger of the two z's;
then `event`'s hold-off on that one z (a point scores only if its z is above every z of the previous
``holdoff`` points) and `event`'s absolute scale z / (z + 3).

Why this shape, and not a combination of the members' p-values (the former ensemble, now `calibrated`):
on public labelled real series (bench/anomaly/evaluate_real.py, README) the p-value combination lost to
its own members under one global threshold (13 to 36 NAB standard against `event`'s 58 to 60): young
series cannot reach a calibrated threshold, autocorrelated and quantised series produce far more
"1 in 1,000" points than promised, and one incident costs once per point. Here:

- `event`'s z is kept unchanged, so the ensemble flags every point `event` flags at the same threshold,
  except the few where a consensus z in the hold-off window is larger (it then fires earlier, on the
  first point of the event): where the consensus is silent (young series: it waits 320 points; ordinary
  points) the ensemble IS `event`, bit for bit;
- the consensus adds what `event` misses: points that are rare for THIS series by the per-series
  calibration (8 unlike sensors sharing one threshold, slow shifts, broken daily patterns, stuck values)
  and enter at the Gaussian z of their rarity; its runs of rare points cost once, through the one
  hold-off;
- one scale, one hold-off: the corpus-wide threshold means the same z for both members.

Measured ≥ the best member on every corpus evaluated (README, "Which detector is the default").
"""

from __future__ import annotations

from typing import Any, ClassVar

from core.detectors.calibrated import CalibratedDetector
from core.detectors.event import EventDetector


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
