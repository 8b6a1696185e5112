"""Seasonal detector: learns a daily and a weekly profile from the timestamps, scores the deseasonalised rest.

Why: request rates and user-facing latencies follow the clock. A value that is normal at 14:00 is an
incident at 03:00, and the nightly dip is not an incident at all; a plain rolling baseline gets both wrong.

How:
- two profiles, indexed by the time of day (``day_slots`` slots) and the time of week (``week_slots``),
  each an exponentially weighted mean per slot with a half-life in TIME (``day_halflife`` /
  ``week_halflife`` seconds), so irregular or changing sampling rates weigh days, not samples;
- points are clipped to +-``clip`` robust sigmas around the current expectation before they are learned,
  so an incident does not teach the profile;
- model choice by the data: every 8 blocks, the residual spread (MAD) over the last ``window`` points is
  computed for "no season", "daily" and "weekly"; the daily profile is eligible after two days, the
  weekly one after eight, and is used only if it cuts the spread by 20%. A non-seasonal series
  therefore gets the robust baseline;
- the raw statistic is |residual - median(residual)| / MAD(residual), the median over the last
  ``window / 8`` points and the MAD over the last ``window``, so a level change on top of the pattern
  is absorbed at the pace of a short rolling median, then calibrated.

Memory: two small profiles (96 + 336 slots, sums and weights) and rings of ``window + block`` points.
One point at a time (`p_one`) is scored with floats; its point waits in a Python list until the block
ends (the profile update needs the rings) or the state is read.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from watchkeeper.core.detectors.base import Detector
from watchkeeper.core.detectors.calibration import TailCalibrator
from watchkeeper.core.detectors.rolling_baseline import MIN_POINTS, robust_1d

DAY = 86400.0
WEEK = 7 * DAY
_NONE, _DAILY, _WEEKLY = 0, 1, 2
_SELECT_EVERY = 8  # blocks between model choices (the choice costs three robust fits)


class SeasonalDetector(Detector):
    name = "seasonal"
    PARAMS: ClassVar[dict[str, tuple[type, Any, str]]] = {
        "window": (int, 288, "points in the residual median/MAD window"),
        "block": (int, 64, "points between profile updates"),
        "day_slots": (int, 96, "slots per day in the daily profile"),
        "week_slots": (int, 336, "slots per week in the weekly profile"),
        "day_halflife": (float, 7 * DAY, "half-life (seconds) of the daily profile"),
        "week_halflife": (float, 4 * WEEK, "half-life (seconds) of the weekly profile"),
        "clip": (float, 5.0, "points are clipped at +-clip sigmas before being learned"),
        "halflife": (float, 20000.0, "half-life (points) of the calibration history"),
        "only_seasonal": (int, 0, "1: no opinion (score 0) while no daily/weekly profile is in use"),
    }
    _state_fields = ("calibrator", "ring_x", "ring_slot", "n", "sd", "wd", "sw", "ww", "model", "res_med",
                     "res_scale", "first_t", "last_t")

    def __init__(self, window: int = 288, block: int = 64, day_slots: int = 96, week_slots: int = 336,
                 day_halflife: float = 7 * DAY, week_halflife: float = 4 * WEEK, clip: float = 5.0,
                 halflife: float = 20000.0, only_seasonal: int = 0) -> None:
        self.params = {"window": window, "block": block, "day_slots": day_slots, "week_slots": week_slots,
                       "day_halflife": day_halflife, "week_halflife": week_halflife, "clip": clip,
                       "halflife": halflife, "only_seasonal": only_seasonal}
        self.only_seasonal = bool(only_seasonal)
        self.active = np.zeros(0, dtype=bool)
        if window < MIN_POINTS or block < 1 or day_slots < 1 or week_slots < 1:
            raise ValueError(f"window must be >= {MIN_POINTS}; block, day_slots, week_slots >= 1")
        self.window, self.block, self.clip = window, block, clip
        self.day_slots, self.week_slots = day_slots, week_slots
        self.day_halflife, self.week_halflife = day_halflife, week_halflife
        self.calibrator = TailCalibrator(halflife=halflife)
        self.ring_x = np.zeros(window + block)
        self.ring_slot = np.zeros((2, window + block), dtype=np.int64)  # daily, weekly slot of each point
        self.n = 0
        self.sd, self.wd = np.zeros(day_slots), np.zeros(day_slots)
        self.sw, self.ww = np.zeros(week_slots), np.zeros(week_slots)
        self.model = _NONE
        self.res_med = float("nan")
        self.res_scale = float("nan")
        self.first_t = float("nan")
        self.last_t = float("nan")
        self.active_one = False  # whether the last `p_one` point had an opinion
        self._lazy: list[tuple[float, int, int]] = []  # newest (value, daily slot, weekly slot), not in rings

    def state_fields(self, prefix: str = "") -> dict[str, Any]:
        self._flush()
        return super().state_fields(prefix)

    def load_fields(self, fields: dict[str, Any], prefix: str = "") -> None:
        super().load_fields(fields, prefix)
        self._lazy = []

    def _flush(self) -> None:
        if self._lazy:
            k = len(self._lazy)
            x, day, week = zip(*self._lazy, strict=True)
            self.ring_x = np.concatenate((self.ring_x[k:], x))
            self.ring_slot = np.concatenate((self.ring_slot[:, k:], np.array((day, week), dtype=np.int64)), axis=1)
            self._lazy = []

    def p_one(self, ts: float, value: float) -> float:
        if self.n == 0:
            self.first_t = self.last_t = ts
        day = int((ts % DAY) * (self.day_slots / DAY)) % self.day_slots
        week = int((ts % WEEK) * (self.week_slots / WEEK)) % self.week_slots
        model = self.model
        if math.isnan(self.res_med) or (self.only_seasonal and model == _NONE):
            raw = math.nan
        else:
            expected = 0.0
            if model != _NONE:
                s, w, slot = (self.sd, self.wd, day) if model == _DAILY else (self.sw, self.ww, week)
                weight = float(w[slot])
                expected = float(s[slot]) / weight if weight > 0 else float(s.sum() / max(w.sum(), 1e-300))
            raw = abs(value - expected - self.res_med) / self.res_scale
        self._lazy.append((value, day, week))
        self.n += 1
        if self.n % self.block == 0:
            self._flush()
            self._refresh(ts)
        self.active_one = raw == raw
        return self.calibrator.p_one(raw)

    def p_batch(self, ts: np.ndarray, values: np.ndarray) -> np.ndarray:
        self._flush()
        N, B = len(values), self.block
        if self.n == 0:
            self.first_t = self.last_t = float(ts[0])
        raw = np.empty(N)
        slots = np.stack((((ts % DAY) * (self.day_slots / DAY)).astype(np.int64) % self.day_slots,
                          ((ts % WEEK) * (self.week_slots / WEEK)).astype(np.int64) % self.week_slots))
        i = 0
        while i < N:
            j = min(N, i + B - self.n % B)
            x, sl = values[i:j], slots[:, i:j]
            if np.isnan(self.res_med) or (self.only_seasonal and self.model == _NONE):
                raw[i:j] = np.nan  # still learning: no opinion (see calibration.py)
            else:
                raw[i:j] = np.abs(x - self._predict(self.model, sl) - self.res_med) / self.res_scale
            self.ring_x = np.concatenate((self.ring_x[j - i :], x))
            self.ring_slot = np.concatenate((self.ring_slot[:, j - i :], sl), axis=1)
            self.n += j - i
            if self.n % B == 0:
                self._refresh(float(ts[j - 1]))
            i = j
        self.active = ~np.isnan(raw)  # which points had an opinion (the ensemble weighs it by this)
        return self.calibrator.p_batch(raw)

    def _predict(self, model: int, slots: np.ndarray) -> np.ndarray:
        """Expected value per point under ``model``; ``slots`` is (2, n): daily and weekly slots."""
        if model == _NONE:
            return np.zeros(slots.shape[1])
        s, w = (self.sd, self.wd) if model == _DAILY else (self.sw, self.ww)
        slot = slots[model - 1]
        ws = w[slot]
        if (ws > 0).all():
            return s[slot] / ws
        fallback = s.sum() / max(w.sum(), 1e-300)
        return np.where(ws > 0, s[slot] / np.maximum(ws, 1e-300), fallback)

    def _refresh(self, t_end: float) -> None:
        B = self.block
        sl_blk, x_blk = self.ring_slot[:, -B:], self.ring_x[-B:]
        if not np.isnan(self.res_med):
            center = self._predict(self.model, sl_blk) + self.res_med
            x_blk = np.clip(x_blk, center - self.clip * self.res_scale, center + self.clip * self.res_scale)
        dt = max(t_end - self.last_t, 0.0)
        self.last_t = t_end
        for model, halflife in ((_DAILY, self.day_halflife), (_WEEKLY, self.week_halflife)):
            s, w = (self.sd, self.wd) if model == _DAILY else (self.sw, self.ww)
            decay = 0.5 ** (dt / halflife)
            slot = sl_blk[model - 1]
            s *= decay
            w *= decay
            s += np.bincount(slot, weights=x_blk, minlength=len(s))
            w += np.bincount(slot, minlength=len(w))

        valid = min(self.n, self.window)
        if valid < self.window:
            return
        xr, tr = self.ring_x[-valid:], self.ring_slot[:, -valid:]
        span = t_end - self.first_t
        loc = max(MIN_POINTS, self.window // 8)
        if (self.n // B) % _SELECT_EVERY and not np.isnan(self.res_med):
            res = xr - self._predict(self.model, tr)
            self.res_scale = robust_1d(res)[1]
            self.res_med = _median(res[-loc:])
            return
        best, best_res = _NONE, xr
        best_scale = robust_1d(xr)[1]
        for model, ready in ((_DAILY, 2 * DAY), (_WEEKLY, WEEK + DAY)):
            if span < ready:
                continue
            res = xr - self._predict(model, tr)
            scale = robust_1d(res)[1]
            if scale < 0.8 * best_scale:
                best, best_res, best_scale = model, res, scale
        self.model, self.res_scale = best, best_scale
        self.res_med = _median(best_res[-loc:])


def _median(a: np.ndarray) -> float:
    """Upper median by one partition: np.median costs ~20x more on these short windows."""
    k = len(a) // 2
    return float(np.partition(a, k)[k])
