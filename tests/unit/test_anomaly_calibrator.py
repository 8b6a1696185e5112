"""The calibrator alone: p in (0, 1], larger raw never less rare, history learnt only at block ends."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.core.detectors.calibration import TailCalibrator
from watchkeeper.core.detectors.state_codec import pack_state, unpack_state


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=0, max_value=2**31), st.integers(min_value=1, max_value=5000))
def test_p_is_a_probability_and_monotone_in_the_raw_value(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    cal = TailCalibrator()
    cal.p_batch(rng.pareto(rng.uniform(0.5, 5.0), n))
    block_start = -cal.n % cal.block or cal.block  # stay inside one frozen block
    probe = np.sort(np.concatenate((rng.uniform(0, 1e3, block_start - 1), [0.0])))
    p = cal.p_batch(probe)
    assert ((p > 0) & (p <= 1)).all()
    assert (np.diff(p) <= 1e-12).all()


def test_a_value_never_seen_before_is_rare_in_proportion_to_the_history() -> None:
    rng = np.random.default_rng(1)
    young, old = TailCalibrator(), TailCalibrator()
    young.p_batch(np.abs(rng.normal(0, 1, 64)))
    old.p_batch(np.abs(rng.normal(0, 1, 20_000)))
    assert young.p_batch(np.array([3.0]))[0] > old.p_batch(np.array([3.0]))[0]
    assert old.p_batch(np.array([3.0]))[0] < 0.01


def test_nan_means_no_opinion_and_is_not_learnt() -> None:
    cal = TailCalibrator()
    p = cal.p_batch(np.full(500, np.nan))
    assert (p == 1.0).all()
    assert cal.counts.sum() == 0.0


def test_state_codec_round_trip() -> None:
    fields = {"a.counts": np.arange(5.0), "a.n": 7, "b.ring": np.zeros((2, 3), dtype=np.int64), "m": 1.5}
    meta, back = unpack_state(pack_state({"detector": "x", "params": {"w": 1}}, fields))
    assert meta == {"detector": "x", "params": {"w": 1}}
    assert back["a.n"] == 7 and back["m"] == 1.5
    np.testing.assert_array_equal(back["a.counts"], fields["a.counts"])
    assert back["b.ring"].dtype == np.int64 and back["b.ring"].shape == (2, 3)
