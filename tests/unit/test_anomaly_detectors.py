"""Detector contracts: causal, batch-invariant, state through bytes, scores in [0, 1], and they detect."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.core.detectors import (
    DETECTOR_CLASSES,
    DETECTORS,
    DetectorParamError,
    coerce_params,
    detector_from_bytes,
    make_detector,
)
from watchkeeper.core.detectors.state_codec import StateDecodeError

FIVE_MIN = 300.0


def series(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = 1_700_000_000.0 + FIVE_MIN * np.arange(n)
    x = 50 + 10 * np.sin(2 * np.pi * ts / 86400) + rng.normal(0, 2, n)
    x[::97] += rng.normal(0, 10, len(x[::97]))
    return ts, x


@pytest.mark.parametrize("name", list(DETECTOR_CLASSES))
def test_score_of_t_ignores_rows_after_t(name: str) -> None:
    ts, x = series()
    t = 1700
    changed = x.copy()
    changed[t + 1 :] = 1e4  # a jump then a flat line: every detector reacts to it
    a = make_detector(name).score_batch(ts, x)
    b = make_detector(name).score_batch(ts, changed)
    np.testing.assert_array_equal(a[: t + 1], b[: t + 1])
    assert not np.array_equal(a[t + 1 :], b[t + 1 :])


@pytest.mark.parametrize("name", list(DETECTOR_CLASSES))
def test_scores_do_not_depend_on_how_the_stream_is_cut(name: str) -> None:
    ts, x = series()
    whole = make_detector(name).score_batch(ts, x)
    det = make_detector(name)
    cuts = [0, 1, 2, 50, 51, 700, 701, 1900, 3000]
    parts = [det.score_batch(ts[a:b], x[a:b]) for a, b in itertools.pairwise(cuts)]
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", list(DETECTOR_CLASSES))
def test_state_round_trips_through_bytes(name: str) -> None:
    ts, x = series()
    whole = make_detector(name, **({"window": 100} if "window" in DETECTOR_CLASSES[name].PARAMS else {}))
    expected = whole.score_batch(ts, x)
    first = make_detector(name, **({"window": 100} if "window" in DETECTOR_CLASSES[name].PARAMS else {}))
    head = first.score_batch(ts[:1234], x[:1234])
    raw = first.to_bytes()
    restored = detector_from_bytes(raw)
    assert restored.params == first.params
    tail = restored.score_batch(ts[1234:], x[1234:])
    np.testing.assert_allclose(np.concatenate((head, tail)), expected, rtol=1e-9, atol=1e-9)
    assert len(raw) < 64 * 1024  # bounded state: a few KiB per series


@pytest.mark.parametrize("name", list(DETECTOR_CLASSES))
def test_state_size_does_not_grow_with_the_series(name: str) -> None:
    ts, x = series(6000)
    det = make_detector(name)
    det.score_batch(ts[:2000], x[:2000])
    size = len(det.to_bytes())
    det.score_batch(ts[2000:], x[2000:])
    assert abs(len(det.to_bytes()) - size) <= 32  # only the digits of a few scalars may change


@pytest.mark.parametrize("name", list(DETECTOR_CLASSES))
def test_scores_are_in_unit_interval_and_a_big_spike_scores_high(name: str) -> None:
    ts, x = series(4000)
    x[3500] += 200
    s = make_detector(name).score_batch(ts, x)
    assert ((s >= 0) & (s <= 1)).all()
    if name in ("event", "ensemble"):  # an absolute scale, not a calibrated rarity: z ~ 26 scores 26 / 29
        assert s[3500] > 0.85 and s[3500] == s.max()
    elif name != "flatline":  # it only rates runs of equal values
        assert s[3500] > 0.999


def test_garbage_state_is_a_clear_error() -> None:
    with pytest.raises(StateDecodeError, match="not a watchkeeper detector state"):
        detector_from_bytes(b"garbage")


def test_unknown_detector_and_param_are_named() -> None:
    with pytest.raises(DetectorParamError, match="unknown detector 'nope'"):
        make_detector("nope")
    with pytest.raises(DetectorParamError, match="has no parameter 'windw'"):
        coerce_params("robust", {"windw": "3"})
    assert coerce_params("robust", {"window": "100"}) == {"window": 100}


def test_the_flat_line_member_is_not_offered_alone() -> None:
    assert "flatline" not in DETECTORS  # a member of `calibrated` only: alone it scores below the z-score baseline
    with pytest.raises(DetectorParamError, match="unknown detector 'flatline'"):
        coerce_params("flatline", {})


def test_flatline_flags_a_stuck_sensor_and_forgets_after_adapt() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(20, 1, 5000)
    x[3000:3100] = x[2999]
    s = make_detector("flatline", adapt=50).score_batch(np.arange(5000.0), x)
    assert s[3003] > 0.999
    assert s[3060] == 0.0  # beyond `adapt`, the flat line is the new normal
    assert (s[:2999] < 0.99).all()


def test_levelshift_sees_a_small_persistent_shift_the_point_detector_misses() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(0, 1, 6000)
    x[4000:] += 1.2
    ts = np.arange(6000.0)
    shift = make_detector("levelshift").score_batch(ts, x)
    robust = make_detector("robust").score_batch(ts, x)
    assert shift[4000:4100].max() > 0.999
    assert robust[4000:4100].max() < shift[4000:4100].max()


def test_seasonal_learns_the_day_and_flags_a_value_normal_at_noon_at_night() -> None:
    rng = np.random.default_rng(5)
    n = 288 * 10
    ts = 1_700_006_400.0 + FIVE_MIN * np.arange(n)  # starts at midnight UTC
    hour = (ts % 86400) / 3600
    x = 100 + 80 * np.exp(-((hour - 12) ** 2) / 8) + rng.normal(0, 3, n)
    night = 288 * 9 + 36  # 03:00 on day 10
    x[night] = 170  # a noon value at 3 a.m.
    det = make_detector("seasonal")
    s = det.score_batch(ts, x)
    assert det.model != 0  # a profile was chosen
    assert s[night] > 0.999
    assert np.mean(s[288 * 3 : night] > 0.99) < 0.02


def test_a_counter_is_scored_on_its_increments_and_a_stop_is_flagged() -> None:
    rng = np.random.default_rng(6)
    inc = rng.poisson(50, 4000).astype(float)
    inc[3000:3100] = 0.0  # the counter stops
    x = np.cumsum(inc)
    x[3500:] = np.cumsum(inc[3500:])  # and is reset (process restart) at 3500
    det = make_detector("calibrated")
    s = det.score_batch(np.arange(4000.0), x)
    assert det.counter.mode == 1
    assert s[3000:3020].max() > 0.999
    assert np.mean(s[1000:2900] > 0.999) < 0.005  # the ever-growing value itself is not an anomaly
    gauge = make_detector("calibrated")
    gauge.score_batch(np.arange(100.0), rng.normal(0, 1, 100))
    assert gauge.counter.mode == 0


def test_a_young_series_still_calls_a_huge_spike_rare() -> None:
    rng = np.random.default_rng(8)
    x = rng.normal(100, 1, 400)
    x[350] = 160  # 60 sigma, only 62 points after the 288-point learning window
    s = make_detector("robust").score_batch(np.arange(400.0), x)
    assert s[350] > 0.999
    assert (s[:288] == 0).all()  # learning: no opinion


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=8))
def test_any_cut_of_the_stream_gives_the_same_ensemble_scores(sizes: list[int]) -> None:
    ts, x = series(1500, seed=2)
    whole = make_detector("ensemble").score_batch(ts, x)
    det = make_detector("ensemble")
    got, i = [], 0
    for size in [*sizes, len(x)]:
        if i >= len(x):
            break
        got.append(det.score_batch(ts[i : i + size], x[i : i + size]))
        i += size
    np.testing.assert_allclose(np.concatenate(got), whole, rtol=1e-9, atol=1e-9)
