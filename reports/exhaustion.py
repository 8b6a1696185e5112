"""When a quantity that shrinks at a constant rate reaches zero: shared by the capacity and SLO reports."""

from __future__ import annotations

import math


def time_until_zero(gap: float, rate: float) -> float:
    """Time until `gap` is used up at `rate` per unit of time: 0 if already gone, inf if it never shrinks."""
    if math.isnan(gap) or math.isnan(rate):
        return math.nan
    if gap <= 0:
        return 0.0
    if rate <= 0:
        return math.inf
    return gap / rate
