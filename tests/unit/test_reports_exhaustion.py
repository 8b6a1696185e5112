import math

from watchkeeper.reports.exhaustion import time_until_zero


def test_gap_over_rate() -> None:
    assert time_until_zero(10.0, 4.0) == 2.5


def test_gone_already_never_and_unknown() -> None:
    assert time_until_zero(0.0, 1.0) == 0.0
    assert time_until_zero(-3.0, 1.0) == 0.0
    assert math.isinf(time_until_zero(1.0, 0.0))
    assert math.isinf(time_until_zero(1.0, -2.0))
    assert math.isnan(time_until_zero(math.nan, 1.0))
    assert math.isnan(time_until_zero(1.0, math.nan))
