"""`event` (the default ensemble's first member): one early detection per event, one absolute scale, ready early."""

from __future__ import annotations

import numpy as np

from tests.unit.test_anomaly_one_point import _assert_same_state
from watchkeeper.core.detectors import DEFAULT_DETECTOR, detector_from_bytes, make_detector

T0, STEP = 1_700_000_000.0, 60.0


def _noise(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return T0 + STEP * np.arange(n), 100 + rng.normal(0, 1, n)


def test_the_default_is_the_ensemble_built_on_it() -> None:
    """`ensemble` is `event` plus the consensus, at least as good on every real corpus, better on sensors
    (docs/anomaly-detection.md, "Which detector is the default"), and meets the throughput targets since issue 18."""
    assert DEFAULT_DETECTOR == "ensemble"


def test_a_level_shift_gives_one_detection_not_a_run() -> None:
    ts, x = _noise(1000)
    x[600:] += 12  # a lasting shift of 12 sigma
    s = make_detector("event").score_batch(ts, x)
    assert s[600] > 0.7
    # the next points are as far from the (old) mean: only one that is further (noise on top of the
    # shift) may score again, never the run of ~100 points a plain z-score flags
    assert np.count_nonzero(s[600:700] > 0.5) <= 4
    assert np.count_nonzero(s[:600] > 0.7) == 0  # z > 7: never in Gaussian noise


def test_a_worse_point_inside_the_holdoff_still_scores() -> None:
    ts, x = _noise(1000, 1)
    x[600] += 8
    x[603] += 30  # the incident gets worse three points later
    s = make_detector("event").score_batch(ts, x)
    assert s[600] > 0.6 and s[603] > s[600] and s[601] < 0.1


def test_a_young_series_is_scored_after_min_points() -> None:
    ts, x = _noise(60, 2)
    x[40] += 25
    s = make_detector("event").score_batch(ts, x)
    assert (s[:24] == 0).all()  # 20 points of history, at the next block start (8-point blocks)
    assert s[40] > 0.85 and s[40] == s.max()


def test_a_change_from_a_constant_is_an_event() -> None:
    ts = T0 + STEP * np.arange(300)
    x = np.where(np.arange(300) < 200, 5.0, 5.5)
    s = make_detector("event").score_batch(ts, x)
    assert s[200] > 0.999 and (s[:200] == 0).all()


def test_same_score_for_the_same_z_on_any_series() -> None:
    """One absolute scale: a 6-sigma point scores alike on a quiet and on a loud series."""
    ts, x = _noise(400, 3)
    quiet, loud = x.copy(), 1000 + 50 * (x - 100)
    quiet[300] += 6
    loud[300] += 300
    a = make_detector("event").score_batch(ts, quiet)[300]
    b = make_detector("event").score_batch(ts, loud)[300]
    assert abs(a - b) < 1e-9 and 0.6 < a < 0.75


def test_discrete_series_one_point_at_a_time_with_a_restart_equals_one_batch() -> None:
    """Ties of z on a discrete series must not split the two paths (the hold-off compares z's)."""
    rng = np.random.default_rng(4)
    ts, x = T0 + STEP * np.arange(700), np.round(rng.normal(0, 1, 700))
    whole = make_detector("event")
    expected = whole.score_batch(ts, x)
    live = make_detector("event")
    got = []
    for i in range(700):
        if i in (13, 333):
            live = detector_from_bytes(live.to_bytes())
        got.append(live.score_one(float(ts[i]), float(x[i])))
    assert got == expected.tolist()
    assert live.to_bytes() == whole.to_bytes()


def test_batches_cut_anywhere_give_the_same_scores() -> None:
    ts, x = _noise(900, 5)
    x[500:520] += 7
    whole = make_detector("event").score_batch(ts, x)
    det = make_detector("event")
    parts = [det.score_batch(ts[a:b], x[a:b]) for a, b in ((0, 7), (7, 300), (300, 301), (301, 900))]
    assert np.concatenate(parts).tolist() == whole.tolist()


def test_huge_values_score_alike_on_both_paths_and_never_nan() -> None:
    """Near the float limit sums overflow; the z is then "no opinion" (0) on both paths, never NaN."""
    rng = np.random.default_rng(6)
    ts, x = T0 + STEP * np.arange(200), rng.normal(0, 1, 200) * 1e306
    x[150] = 1.7e308
    batch = make_detector("event").score_batch(ts, x)
    live = make_detector("event")
    one = [live.score_one(float(t), float(v)) for t, v in zip(ts, x, strict=True)]
    assert not np.isnan(batch).any() and one == batch.tolist()


def test_ensemble_one_point_at_a_time_with_restarts_equals_one_batch() -> None:
    ts, x = _noise(900, 7)
    x[700:760] += 2.5  # a small lasting shift: the calibrated members' kind of anomaly
    whole = make_detector("ensemble")
    expected = whole.score_batch(ts, x)
    live = make_detector("ensemble")
    got = []
    for i in range(900):
        if i in (5, 300, 701):
            live = detector_from_bytes(live.to_bytes())
        got.append(live.score_one(float(ts[i]), float(x[i])))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    # the ensemble's own two paths agree to 1e-9, not to the bit (its calibrators' sums)
    _assert_same_state(live.to_bytes(), whole.to_bytes())
    plain = make_detector("event").score_batch(ts, x)
    assert (expected >= plain).all()  # it only adds detections (see the next test)
    assert (expected > plain).any()  # and here it does


def test_gauss_z_is_the_normal_quantile_on_both_paths() -> None:
    from statistics import NormalDist

    from watchkeeper.core.detectors.event import gauss_z, gauss_z_one
    ps = [1.0, 0.5, 0.05, 0.001, 1e-6, 1e-12, 1e-15]  # the calibration never says less than 1e-15
    arr = gauss_z(np.array(ps)).tolist()
    for p, z in zip(ps, arr, strict=True):
        assert z == gauss_z_one(p)
        assert abs(z - (-NormalDist().inv_cdf(p / 2) if p < 1 else 0.0)) < 1e-6
