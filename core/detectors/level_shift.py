"""Level shifts and drifts: a multi-scale scan of robust-standardised residuals (a windowed CUSUM/GLR).

A shift of d robust standard deviations that persists m points makes the sum of the last m standardised
residuals grow like d*m, against a typical size of sqrt(m) for noise, so a shift too small for a point
detector (one sigma) still stands out after 16 or 64 points, and a slow drift after 64. Residuals are
clipped at +-``clip`` first, so a single spike cannot pass for a shift. Scales 1 (the point itself,
unclipped: the scan's shortest window, so a shift that starts with a jump is seen at once), 4, 16 and
64; each scale is divided by its own typical |sum| on this series (residuals of a wandering sensor are
autocorrelated and their long sums routinely large), and the statistic is the largest ratio. The sums
come from one cumsum per call, which is why a windowed scan was chosen over the recursive CUSUM (that
needs a reset rule and a loop per point). One point at a time (`p_one`), the last 64 residuals are a
Python list and the sums come from `itertools.accumulate`, the same sequential additions as `np.cumsum`.
"""

from __future__ import annotations

import math
from itertools import accumulate
from typing import Any, ClassVar

import numpy as np

from watchkeeper.core.detectors.base import Detector
from watchkeeper.core.detectors.calibration import TailCalibrator
from watchkeeper.core.detectors.rolling_baseline import RollingBaseline

_SCALES = (1, 4, 16, 64)  # scale 1 is the point itself, unclipped
_SCALES_ARR = np.array(_SCALES, dtype=np.float64)
_SPREAD_HALFLIFE = 4000.0  # points


class LevelShiftDetector(Detector):
    name = "levelshift"
    PARAMS: ClassVar[dict[str, tuple[type, Any, str]]] = {
        "window": (int, 288, "points in the reference median/MAD window"),
        "block": (int, 32, "points between reference refreshes"),
        "clip": (float, 4.0, "residuals are clipped at +-clip robust sigmas"),
        "halflife": (float, 20000.0, "half-life (points) of the calibration history"),
    }
    _state_fields = ("baseline", "calibrator", "tail", "spread", "block_sum", "n", "n_valid", "n_spread")

    def __init__(self, window: int = 288, block: int = 32, clip: float = 4.0, halflife: float = 20000.0) -> None:
        self.params = {"window": window, "block": block, "clip": clip, "halflife": halflife}
        self.clip = clip
        self.baseline = RollingBaseline(window, block)
        self.calibrator = TailCalibrator(halflife=halflife)
        self.tail = np.zeros(max(_SCALES))  # last standardised residuals, oldest first
        self.block = block
        self.spread = np.zeros(len(_SCALES))  # typical |window sum| per scale (EW over blocks); 0 = unknown
        self.block_sum = np.zeros(len(_SCALES))  # sum of |window sum| in the current block
        self.n = 0
        self.n_valid = 0  # points with a known residual so far (window sums are whole after 64 of them)
        self.n_spread = 0  # blocks learnt into `spread`
        self._live: _LiveSums | None = None  # `tail`, `block_sum` and the frozen spreads as Python lists

    def state_fields(self, prefix: str = "") -> dict[str, Any]:
        self._sync()
        return super().state_fields(prefix)

    def load_fields(self, fields: dict[str, Any], prefix: str = "") -> None:
        super().load_fields(fields, prefix)
        self._live = None

    def _sync(self) -> None:
        """Write the Python lists of `p_one` back into the state arrays."""
        if self._live is not None:
            self.tail = np.array(self._live.tail)
            self.block_sum = np.array(self._live.block_sum)
            self._live = None

    def p_one(self, ts: float, value: float) -> float:
        live = self._live
        if live is None:
            spreads = np.maximum(self.spread if self.n_spread else np.sqrt(_SCALES_ARR) * 0.8, 1e-9)
            live = self._live = _LiveSums(self.tail.tolist(), self.block_sum.tolist(), spreads.tolist())
        med, scale = self.baseline.stat_one(value)
        z_point = abs(value - med) / scale
        learning = z_point != z_point
        tail = live.tail
        tail.append(0.0 if learning else min(max((value - med) / scale, -self.clip), self.clip))
        cs = list(accumulate(tail, initial=0.0))
        del tail[0]
        end = len(cs) - 1
        sums = [0.0 if learning else z_point] + [abs(cs[end] - cs[end - m]) for m in _SCALES[1:]]
        if not learning:
            self.n_valid += 1
        if self.n_valid > len(tail):  # a whole window of known residuals
            live.block_sum = [a + b for a, b in zip(live.block_sum, sums, strict=True)]
        raw = max([a / b for a, b in zip(sums, live.spreads, strict=True)])
        self.n += 1
        if self.n % self.block == 0:
            self._sync()
            self._learn_block()
        return self.calibrator.p_one(math.nan if learning else raw)

    def _learn_block(self) -> None:
        """At a block end: the block's mean |window sum| per scale into `spread`."""
        if self.block_sum.any():
            w = max(1 - 0.5 ** (self.block / _SPREAD_HALFLIFE), 1 / (self.n_spread + 1))  # plain mean, then EW
            self.spread = (1 - w) * self.spread + w * self.block_sum / self.block
            self.n_spread += 1
            self.block_sum[:] = 0.0

    def raw_batch(self, values: np.ndarray) -> np.ndarray:
        self._sync()
        med, scale = self.baseline.stats(values)
        z_point = np.abs(values - med) / scale
        learning = np.isnan(z_point)
        z = np.where(learning, 0.0, np.clip((values - med) / scale, -self.clip, self.clip))
        M = len(self.tail)
        ext = np.concatenate((self.tail, z))
        cs = np.concatenate(([0.0], np.cumsum(ext)))
        end = np.arange(M, M + len(z)) + 1
        sums = np.stack([np.where(learning, 0.0, z_point)] + [np.abs(cs[end] - cs[end - m]) for m in _SCALES[1:]])
        self.tail = ext[-M:]
        raw = np.max(sums / self._spreads(sums, learning), axis=0)
        return np.where(learning, np.nan, raw)

    def _spreads(self, sums: np.ndarray, learning: np.ndarray) -> np.ndarray:
        """Per point and scale, the series' typical |window sum| as of its block start (frozen in blocks).

        Residuals of a wandering process (a sensor, a queue) are autocorrelated: their 64-point sums
        are routinely large. Dividing each scale by its own typical size makes the scales comparable
        and makes "large" mean "large for this series"; the calibrator then ranks the result.
        """
        B, N, M = self.block, sums.shape[1], max(_SCALES)
        out = np.empty_like(sums)
        n_valid = self.n_valid + np.cumsum(~learning)
        whole = n_valid > M  # window sums made only of known residuals
        i = 0
        while i < N:
            j = min(N, i + B - self.n % B)
            out[:, i:j] = (self.spread if self.n_spread else np.sqrt(_SCALES_ARR) * 0.8)[:, None]
            self.block_sum += sums[:, i:j][:, whole[i:j]].sum(axis=1)
            self.n += j - i
            if self.n % B == 0:
                self._learn_block()
            i = j
        self.n_valid = int(n_valid[-1]) if N else self.n_valid
        return np.maximum(out, 1e-9)

    def p_batch(self, ts: np.ndarray, values: np.ndarray) -> np.ndarray:
        return self.calibrator.p_batch(self.raw_batch(values))


class _LiveSums:
    """`LevelShiftDetector`'s per-point state between two block ends, as Python lists."""

    __slots__ = ("block_sum", "spreads", "tail")

    def __init__(self, tail: list[float], block_sum: list[float], spreads: list[float]) -> None:
        self.tail, self.block_sum, self.spreads = tail, block_sum, spreads
