"""Given a series scored one point per call (the live path, `score_one`), expect the scores and the state
of the same series scored in one batch, for every detector, with or without a state round trip."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.core.detectors import DETECTOR_CLASSES, detector_from_bytes, make_detector
from watchkeeper.core.detectors.state_codec import unpack_state

T0, STEP = 1_700_000_000.0, 300.0


def _series(kind: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = [100 + rng.normal(0, 3, n), np.cumsum(rng.poisson(5, n)).astype(float), np.round(rng.normal(0, 1, n)),
         50 + 20 * np.sin(2 * np.pi * STEP * np.arange(n) / 86400) + rng.normal(0, 2, n)][kind]
    x[n // 2] += 60
    return x


def _assert_same_state(a: bytes, b: bytes) -> None:
    (meta_a, fa), (meta_b, fb) = unpack_state(a), unpack_state(b)
    assert meta_a == meta_b and list(fa) == list(fb)
    for name in fa:
        if isinstance(fa[name], np.ndarray):
            np.testing.assert_allclose(fa[name], fb[name], rtol=1e-9, atol=1e-9, err_msg=name)
        else:
            assert fa[name] == fb[name] or (fa[name] != fa[name] and fb[name] != fb[name]), name


@settings(max_examples=12, deadline=None)
@given(name=st.sampled_from(sorted(DETECTOR_CLASSES)), kind=st.integers(0, 3), n=st.integers(300, 700),
       seed=st.integers(0, 1000), reload_at=st.integers(0, 700))
def test_one_point_at_a_time_equals_one_batch(name: str, kind: int, n: int, seed: int, reload_at: int) -> None:
    ts, x = T0 + STEP * np.arange(n), _series(kind, n, seed)
    whole = make_detector(name)
    expected = whole.score_batch(ts, x)
    live = make_detector(name)
    got = []
    for i in range(n):
        if i == reload_at:  # a restart from a checkpoint in the middle of a block
            live = detector_from_bytes(live.to_bytes())
        got.append(live.score_one(float(ts[i]), float(x[i])))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    _assert_same_state(live.to_bytes(), whole.to_bytes())


@pytest.mark.parametrize("name", ["calibrated", "ensemble"])
def test_regression_ensemble_gauge_325_points_seed_0(name: str) -> None:
    """Issue 18, a fresh-clone CI failure: the scores agreed but the robust member's calibration counts
    differed in the last bit (a closed-form decayed cumsum in one batch, one block at a time live), which
    flipped a `tail >= 5` test at point 324 and left a different value in the ensemble's calibrator. The
    detector was the ensemble of then, `calibrated` now, which is also a member of today's ensemble."""
    test_one_point_at_a_time_equals_one_batch.hypothesis.inner_test(name=name, kind=0, n=325, seed=0,
                                                                     reload_at=0)


@pytest.mark.parametrize("name", ["calibrated", "ensemble"])
def test_single_point_batches_and_score_one_are_the_same_path(name: str) -> None:
    ts, x = T0 + STEP * np.arange(800), _series(0, 800, 1)
    a, b = make_detector(name), make_detector(name)
    one = [a.score_one(float(t), float(v)) for t, v in zip(ts, x, strict=True)]
    arr = [float(b.score_batch(ts[i:i + 1], x[i:i + 1])[0]) for i in range(800)]
    assert one == arr
    assert a.to_bytes() == b.to_bytes()
    assert one.index(max(one)) == 400 and max(one) > (0.999 if name == "calibrated" else 0.85)  # the spike
