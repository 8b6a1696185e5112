"""Calibration: the same threshold means the same rarity on series of very different shapes.

Pure-noise series (no anomaly) of three shapes: flat with tiny noise, heavy-tailed spiky latency, and a
daily seasonal rate. For every calibrated detector the fraction of points above 0.9 / 0.99 / 0.999 must
be about 10% / 1% / 0.1% on each of them; the rolling z-score, uncalibrated, is far off on the spiky one.
"""

from __future__ import annotations

import numpy as np
import pytest

from watchkeeper.core.detectors import make_detector

N = 40_000
WARMUP = 8_000


def shapes() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(42)
    ts = 1_700_000_000.0 + 300.0 * np.arange(N)
    flat = 2.0 + rng.normal(0, 0.001, N)
    spiky = 40.0 + 5 * rng.standard_t(2.0, N) ** 2  # heavy right tail like a latency
    seasonal = 500 + 300 * np.sin(2 * np.pi * ts / 86400) + rng.normal(0, 20, N)
    return {"flat": (ts, flat), "spiky": (ts, spiky), "seasonal": (ts, seasonal)}


SHAPES = shapes()


@pytest.mark.parametrize("name", ["robust", "seasonal", "levelshift", "calibrated"])
def test_fraction_above_each_threshold_matches_its_rarity_on_every_shape(name: str) -> None:
    for shape, (ts, x) in SHAPES.items():
        s = make_detector(name).score_batch(ts, x)[WARMUP:]
        for threshold, tol in ((0.9, 0.03), (0.99, 0.006), (0.999, 0.0015)):
            frac = float(np.mean(s >= threshold))
            expected = 1 - threshold
            assert abs(frac - expected) <= tol, f"{name} on {shape}: {frac:.4f} above {threshold}"


def test_flatline_stays_quiet_on_noise() -> None:
    for ts, x in SHAPES.values():
        s = make_detector("flatline").score_batch(ts, x)[WARMUP:]
        assert np.mean(s >= 0.99) <= 0.01


def test_the_uncalibrated_zscore_means_different_rarities_on_different_shapes() -> None:
    fracs = {shape: float(np.mean(make_detector("zscore").score_batch(ts, x)[WARMUP:] >= 0.999))
             for shape, (ts, x) in SHAPES.items()}
    assert fracs["spiky"] > 5 * fracs["flat"]  # 1 in 100 on the spiky series, 1 in 1000 on the flat one
