"""What every detector is: a causal, batch-vectorised scorer whose whole state fits in a few KiB of bytes.

Contract (tested for every detector):
- causal: the score of point t depends on points <= t only, and not on how the stream was cut into
  batches (``score_batch(a); score_batch(b)`` equals ``score_batch(a + b)`` up to float rounding);
- bounded state: O(1) memory per series (fixed-size rings, histograms and profiles);
- state round-trips through bytes (`to_bytes` / `detector_from_bytes`), for a Faust table;
- no clock: time is the timestamps passed in.

Detectors that adapt their model do it at fixed block boundaries of the point count (every ``block``
points): inside a block the model is frozen, so a whole block is scored with numpy at once, yet the
result never depends on where a caller's batches begin or end.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from core.detectors.state_codec import pack_state


class Stateful:
    """A component whose state is the attributes named in ``_state_fields`` (arrays, scalars, Stateful)."""

    _state_fields: ClassVar[tuple[str, ...]] = ()

    def state_fields(self, prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self._state_fields:
            value = getattr(self, name)
            if isinstance(value, Stateful):
                out.update(value.state_fields(f"{prefix}{name}."))
            else:
                out[prefix + name] = value
        return out

    def load_fields(self, fields: dict[str, Any], prefix: str = "") -> None:
        for name in self._state_fields:
            current = getattr(self, name)
            if isinstance(current, Stateful):
                current.load_fields(fields, f"{prefix}{name}.")
            else:
                setattr(self, name, fields[prefix + name])


class Detector(Stateful, ABC):
    """Scores one series. ``p_batch`` gives tail probabilities, ``score_batch`` the calibrated 1 - p."""

    name: ClassVar[str]
    params: dict[str, Any]

    @abstractmethod
    def p_batch(self, ts: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Tail probability of each point under this series' own running null (small = rare)."""

    def score_batch(self, ts: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Anomaly scores in [0, 1]: a score >= 1 - a means "rarer than a fraction a of normal points"."""
        ts = np.asarray(ts, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64)
        if ts.shape != values.shape or ts.ndim != 1:
            raise ValueError("ts and values must be 1-D arrays of the same length")
        if not np.isfinite(values).all() or not np.isfinite(ts).all():
            raise ValueError("ts and values must be finite; drop or report bad points before scoring")
        if len(values) == 0:
            return np.empty(0)
        return 1.0 - self.p_batch(ts, values)

    def score(self, ts: float, value: float) -> float:
        """One point; prefer `score_batch` on hot paths."""
        return float(self.score_batch(np.array([ts]), np.array([value]))[0])

    def to_bytes(self) -> bytes:
        return pack_state({"detector": self.name, "params": self.params}, self.state_fields())
