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

One point at a time (a live worker: one window per series per batch) has its own path, `score_one` /
`p_one`: a numpy call costs ~1 us whatever its size, so the dozens of them a batch call makes would
cost ~0.4 ms per point. Inside a block, the frozen model is cached as Python floats and lists and a
point is scored with plain float arithmetic (the same operations, in the same order, as the batch path,
so the same results); the numpy update runs once per block, and points waiting for it are kept in
small Python lists, written into the state arrays before any batch call or serialisation.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from watchkeeper.core.detectors.state_codec import pack_state


class Stateful:
    """A component whose state is the attributes named in ``_state_fields`` (arrays, scalars, Stateful)."""

    _state_fields: ClassVar[tuple[str, ...]] = ()

    def state_fields(self, prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self._state_fields:
            value = getattr(self, name)
            if value is None:  # an optional part this instance does not have (its params say so)
                continue
            if isinstance(value, Stateful):
                out.update(value.state_fields(f"{prefix}{name}."))
            else:
                out[prefix + name] = value
        return out

    def load_fields(self, fields: dict[str, Any], prefix: str = "") -> None:
        for name in self._state_fields:
            current = getattr(self, name)
            if current is None:
                continue
            if isinstance(current, Stateful):
                current.load_fields(fields, f"{prefix}{name}.")
            else:
                setattr(self, name, fields[prefix + name])


COUNTER_PROBE = 32  # points watched before deciding whether a series is a counter


class CounterRate(Stateful):
    """Counters are scored on their increments, gauges as they are; the series tells which.

    Why: a counter (requests_total, bytes written) is a ramp, and every interesting thing about it (a
    burst, a slowdown, a stop) is a change of its SLOPE, invisible next to its ever-growing value. The
    first ``COUNTER_PROBE`` points are watched (scored 0): if they never decrease and mostly increase,
    the series is a counter from then on and its increments x[t] - x[t-1] are scored (a decrease is a
    counter reset: the increment is then x[t], as in Prometheus' rate()). A stopped counter becomes a
    run of zero increments, which the flat-line detector knows how to rate.
    """

    _state_fields = ("mode", "probe_t", "probe_x", "n", "prev")

    def __init__(self) -> None:
        self.mode = -1  # -1 still probing, 0 gauge, 1 counter
        self.probe_t = np.zeros(COUNTER_PROBE)
        self.probe_x = np.zeros(COUNTER_PROBE)
        self.n = 0
        self.prev = 0.0

    def probe(self, ts: np.ndarray, x: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
        """Take probe points from the head of a batch. Returns (points taken, ts, x released to score)."""
        take = min(COUNTER_PROBE - self.n, len(x)) if self.mode < 0 else 0
        if take:
            self.probe_t[self.n : self.n + take] = ts[:take]
            self.probe_x[self.n : self.n + take] = x[:take]
            self.n += take
        if self.mode >= 0 or self.n < COUNTER_PROBE:
            return take, np.empty(0), np.empty(0)
        d = np.diff(self.probe_x)
        self.mode = int(bool((d >= 0).all() and np.count_nonzero(d > 0) >= len(d) // 2))
        if self.mode:
            self.prev = float(self.probe_x[0])
            return take, self.probe_t[1:].copy(), self.probe_x[1:].copy()
        return take, self.probe_t.copy(), self.probe_x.copy()

    def transform_one(self, x: float) -> float:
        """`transform` of one point of a series whose kind is known."""
        if self.mode != 1:
            return x
        prev, self.prev = self.prev, x
        return x - prev if x >= prev else x

    def transform(self, x: np.ndarray) -> np.ndarray:
        if self.mode != 1 or not len(x):
            return x
        prev = np.concatenate(([self.prev], x[:-1]))
        self.prev = float(x[-1])
        return np.where(x >= prev, x - prev, x)


class Detector(Stateful, ABC):
    """Scores one series. ``p_batch`` gives tail probabilities, ``score_batch`` the calibrated 1 - p."""

    name: ClassVar[str]
    params: dict[str, Any]
    counter_aware: ClassVar[bool] = True  # score counters on their increments (see CounterRate)
    _counter: CounterRate | None = None

    @property
    def counter(self) -> CounterRate:
        if self._counter is None:
            self._counter = CounterRate()
        return self._counter

    def state_fields(self, prefix: str = "") -> dict[str, Any]:
        out = super().state_fields(prefix)
        if self.counter_aware:
            out.update(self.counter.state_fields(f"{prefix}counter."))
        return out

    def load_fields(self, fields: dict[str, Any], prefix: str = "") -> None:
        super().load_fields(fields, prefix)
        if self.counter_aware:
            self.counter.load_fields(fields, f"{prefix}counter.")

    @abstractmethod
    def p_batch(self, ts: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Tail probability of each point under this series' own running null (small = rare)."""

    def p_one(self, ts: float, value: float) -> float:
        """`p_batch` of one point. Detectors override it with a scalar path (see the module docstring)."""
        return float(self.p_batch(np.array([ts]), np.array([value]))[0])

    def score_batch(self, ts: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Anomaly scores in [0, 1]: a score >= 1 - a means "rarer than a fraction a of normal points"."""
        ts = np.asarray(ts, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64)
        if ts.shape != values.shape or ts.ndim != 1:
            raise ValueError("ts and values must be 1-D arrays of the same length")
        if len(values) == 1:
            return np.array([self.score_one(float(ts[0]), float(values[0]))])
        if not np.isfinite(values).all() or not np.isfinite(ts).all():
            raise ValueError("ts and values must be finite; drop or report bad points before scoring")
        if len(values) == 0:
            return np.empty(0)
        if not self.counter_aware:
            return 1.0 - self.p_batch(ts, values)
        p = np.ones(len(values))
        take, probe_t, probe_x = self.counter.probe(ts, values)
        if len(probe_x):  # the series' kind is now known: teach the detector the probed points
            self.p_batch(probe_t, self.counter.transform(probe_x))
        if take < len(values):
            p[take:] = self.p_batch(ts[take:], self.counter.transform(values[take:]))
        return 1.0 - p

    def score_one(self, ts: float, value: float) -> float:
        """The score of one point, as `score_batch` would give it, without arrays (the live path)."""
        if not (math.isfinite(ts) and math.isfinite(value)):
            raise ValueError("ts and values must be finite; drop or report bad points before scoring")
        if not self.counter_aware:
            return 1.0 - self.p_one(ts, value)
        counter = self.counter
        if counter.mode < 0:  # a probed point (scored 0); the last one decides the series' kind
            _, probe_t, probe_x = counter.probe(np.array([ts]), np.array([value]))
            if len(probe_x):
                self.p_batch(probe_t, counter.transform(probe_x))
            return 0.0
        return 1.0 - self.p_one(ts, counter.transform_one(value))

    def score(self, ts: float, value: float) -> float:
        """One point (same as `score_one`)."""
        return self.score_one(ts, value)

    def to_bytes(self) -> bytes:
        return pack_state({"detector": self.name, "params": self.params}, self.state_fields())
