"""Streaming anomaly detectors with calibrated scores in [0, 1] (see `base.py` for the contract).

``make_detector("event", window=288)`` builds one; ``detector_from_bytes(raw)`` restores a saved one.

`DETECTORS` are the ones users pick (rules, `watchkeeper detect`). The flat-line detector is a member of
`calibrated` only: alone it sees nothing but runs of equal values, so on a mixed stream it misses everything
else and scores below the rolling z-score (bench/anomaly); a rule that must fire on a stuck series
alone is a PromQL rule, ``changes(x[15m]) == 0``.
"""

from __future__ import annotations

from typing import Any

from watchkeeper.core.detectors.base import Detector
from watchkeeper.core.detectors.calibrated import CalibratedDetector
from watchkeeper.core.detectors.ensemble import EnsembleDetector
from watchkeeper.core.detectors.event import EventDetector
from watchkeeper.core.detectors.flatline import FlatlineDetector
from watchkeeper.core.detectors.level_shift import LevelShiftDetector
from watchkeeper.core.detectors.robust import RobustDetector
from watchkeeper.core.detectors.seasonal import SeasonalDetector
from watchkeeper.core.detectors.state_codec import StateDecodeError, unpack_state
from watchkeeper.core.detectors.zscore import ZScoreDetector
from watchkeeper.core.errors import CoreError

DETECTORS: dict[str, Any] = {
    cls.name: cls
    for cls in (EventDetector, EnsembleDetector, CalibratedDetector, RobustDetector, SeasonalDetector,
                LevelShiftDetector, ZScoreDetector)
}
ENSEMBLE_MEMBERS: dict[str, Any] = {FlatlineDetector.name: FlatlineDetector}  # `calibrated`'s; not offered alone
DETECTOR_CLASSES: dict[str, Any] = DETECTORS | ENSEMBLE_MEMBERS
# The one default: `watchkeeper detect`, `anomaly:` rules and `make_detector()` all take it from here.
DEFAULT_DETECTOR = "ensemble"  # the best on real labelled corpora (README, bench/anomaly/evaluate_real.py)


class DetectorParamError(CoreError):
    """An unknown detector, unknown parameter or a parameter value of the wrong type."""


def coerce_params(name: str, raw: dict[str, str]) -> dict[str, Any]:
    """``{"window": "100"}`` -> ``{"window": 100}`` using the detector's declared parameter types."""
    if name not in DETECTORS:
        raise DetectorParamError(f"unknown detector {name!r}; choose one of: {', '.join(DETECTORS)}")
    spec = DETECTORS[name].PARAMS
    out: dict[str, Any] = {}
    for key, text in raw.items():
        if key not in spec:
            raise DetectorParamError(f"detector {name!r} has no parameter {key!r}; it has: {', '.join(spec)}")
        typ = spec[key][0]
        try:
            out[key] = typ(float(text)) if typ is int and float(text).is_integer() else typ(text)
        except ValueError as exc:
            raise DetectorParamError(f"parameter {key}={text!r}: expected {typ.__name__}") from exc
    return out


def make_detector(name: str = DEFAULT_DETECTOR, **params: Any) -> Detector:
    if name not in DETECTOR_CLASSES:
        raise DetectorParamError(f"unknown detector {name!r}; choose one of: {', '.join(DETECTORS)}")
    try:
        det: Detector = DETECTOR_CLASSES[name](**params)
    except (TypeError, ValueError) as exc:
        raise DetectorParamError(f"detector {name!r}: {exc}") from exc
    return det


def detector_from_bytes(raw: bytes) -> Detector:
    meta, fields = unpack_state(raw)
    try:  # a state saved by another version (a detector or parameter since renamed or removed)
        det = make_detector(meta["detector"], **meta["params"])
    except DetectorParamError as exc:
        raise StateDecodeError(f"detector state of another version: {exc}") from exc
    try:
        det.load_fields(fields)
    except KeyError as exc:
        raise StateDecodeError(f"detector state lacks field {exc}") from exc
    return det


__all__ = ["DEFAULT_DETECTOR", "DETECTORS", "DETECTOR_CLASSES", "ENSEMBLE_MEMBERS", "Detector",
           "DetectorParamError", "coerce_params", "detector_from_bytes", "make_detector"]
