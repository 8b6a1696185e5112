"""The ensemble: `event`'s z plus the calibrated consensus, one hold-off. By construction it flags every
point `event` flags, with the same score (at any threshold its detections include `event`'s); what it
adds are the consensus' points, once per event."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.core.detectors import detector_from_bytes, make_detector
from watchkeeper.core.detectors.calibrated import CalibratedDetector
from watchkeeper.core.detectors.ensemble import EnsembleDetector
from watchkeeper.core.detectors.event import gauss_z
from watchkeeper.core.detectors.state_codec import StateDecodeError, pack_state, unpack_state

T0, STEP = 1_700_000_000.0, 60.0


def _series(kind: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return [100 + rng.normal(0, 3, n), np.cumsum(rng.poisson(5, n)).astype(float), np.round(rng.normal(0, 1, n)),
            np.where(np.arange(n) % 200 < 100, 10.0, 12.0) + rng.standard_t(2, n)][kind]


@settings(max_examples=10, deadline=None)
@given(kind=st.integers(0, 3), n=st.integers(50, 900), seed=st.integers(0, 1000), at=st.integers(0, 899),
       size=st.floats(-50, 50))
def test_the_ensemble_scores_every_point_at_least_as_event_does(kind: int, n: int, seed: int, at: int,
                                                                 size: float) -> None:
    x = _series(kind, n, seed)
    x[at % n:] += size  # a level shift somewhere (or none)
    ts = T0 + STEP * np.arange(n)
    ens = make_detector("ensemble").score_batch(ts, x)
    event = make_detector("event").score_batch(ts, x)
    assert (ens >= event).all()
    # while the consensus learns (32 points deciding counter or gauge, then its 288-point window) it is silent
    np.testing.assert_array_equal(ens[:320], event[:320])


def test_what_the_ensemble_adds_is_the_consensus_rarity_once_per_event() -> None:
    rng = np.random.default_rng(3)
    n = 3000
    x = 100 + np.cumsum(rng.normal(0, 0.1, n))  # a wandering series: `event`'s window z and robust disagree
    ts = T0 + STEP * np.arange(n)
    ens = make_detector("ensemble").score_batch(ts, x)
    event = make_detector("event").score_batch(ts, x)
    alone = CalibratedDetector(seasonal=0, levelshift=0, flatline=0).score_batch(ts, x)  # the same member
    zc = gauss_z(1.0 - alone)
    added = ens > event
    assert added.any()
    np.testing.assert_allclose(ens[added], zc[added] / (zc[added] + 3.0), rtol=1e-12)
    # each added point is the consensus' largest z over itself and the hold-off before it
    for i in np.flatnonzero(added):
        assert zc[i] > zc[max(0, i - 10):i].max(initial=0.0)


def test_the_consensus_inside_the_ensemble_is_robust_recalibrated() -> None:
    det = make_detector("ensemble")
    assert isinstance(det, EnsembleDetector) and isinstance(det.calibrated, CalibratedDetector)
    assert {k: det.calibrated.params[k] for k in ("seasonal", "levelshift", "flatline")} == dict.fromkeys(
        ("seasonal", "levelshift", "flatline"), 0)  # measured on real corpora: no gain or a loss (README)
    assert make_detector("calibrated").params["flatline"] == 1  # `calibrated` alone keeps all four


def test_states_saved_by_the_former_detectors_are_a_clear_error_not_a_crash() -> None:
    """Checkpoints written before the redesign: `event` with `calibrated=1` (a parameter that is gone) and
    the former `ensemble` (other state fields). The agent counts them unreadable and starts afresh."""
    event = make_detector("event")
    _, fields = unpack_state(event.to_bytes())
    old_event = pack_state({"detector": "event", "params": {**event.params, "calibrated": 1}}, fields)
    with pytest.raises(StateDecodeError, match="another version"):
        detector_from_bytes(old_event)
    _, fields = unpack_state(make_detector("calibrated").to_bytes())
    old_ensemble = pack_state({"detector": "ensemble", "params": {"window": 288}}, fields)
    with pytest.raises(StateDecodeError, match="lacks field"):
        detector_from_bytes(old_ensemble)
