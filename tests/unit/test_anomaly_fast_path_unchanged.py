"""Given seeded series scored by `event`, `ensemble` and the detectors sharing their code, one point per
call, in one batch and in uneven chunks with restarts, expect the scores and the saved states recorded from
the implementation before the one-point path was optimised (issue 18), to the bit.

Why a recording: the one-point path was rewritten for speed (plain-float rolling statistics, no numpy on
scalars), and the promise was "not a single score changes". The property test in test_anomaly_one_point.py
compares the two paths with each other; this one compares both with what they gave before.

The fixture is produced by this file's own code, run once on the old implementation (SHA-256 digests of
every score array and state; for `event` and `ensemble` also the arrays, to name what differs):

    PYTHONPATH=. python tests/unit/test_anomaly_fast_path_unchanged.py --record
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

from watchkeeper.core.detectors import detector_from_bytes, make_detector
from watchkeeper.core.detectors.state_codec import unpack_state

FIXTURE = Path(__file__).parent / "fixtures" / "anomaly_fast_path_reference.npz"
T0, STEP, N = 1_700_000_000.0, 300.0, 1500
DETECTORS = ("event", "ensemble", "robust", "levelshift", "calibrated")  # the last three share the rolling baseline
KEPT_WHOLE = ("event", "ensemble")  # mostly zero scores: small compressed
KINDS = ("gauge", "counter", "quantised", "seasonal", "heavy_tailed_shift", "flat_then_spiky")
WAYS = ("one", "batch", "chunks")
CHUNKS = (1, 7, 1, 1, 33, 2, 64, 1, 5, 130, 1, 1, 17)  # uneven cuts across block ends, cycled


def _series(kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    i = np.arange(N)
    x = {
        "gauge": lambda: 100 + rng.normal(0, 3, N),
        "counter": lambda: np.cumsum(rng.poisson(5, N)).astype(float),
        "quantised": lambda: np.round(rng.normal(0, 1, N)),
        "seasonal": lambda: 50 + 20 * np.sin(2 * np.pi * STEP * i / 86400) + rng.normal(0, 2, N),
        "heavy_tailed_shift": lambda: np.where(i % 400 < 200, 10.0, 14.0) + rng.standard_t(2, N),
        "flat_then_spiky": lambda: np.where(i < 600, 5.0, 5.0 + rng.exponential(1.0, N)),
    }[kind]()
    for at in rng.integers(50, N, 6):
        x[at] += rng.choice([-1.0, 1.0]) * rng.uniform(5, 60)
    return x


def _run(name: str, kind: str, way: str) -> tuple[np.ndarray, bytes]:
    seed = KINDS.index(kind)
    ts, x = T0 + STEP * np.arange(N), _series(kind, seed)
    det = make_detector(name)
    if way == "batch":
        return det.score_batch(ts, x), det.to_bytes()
    out: list[float] = []
    i, c = 0, 0
    while i < N:
        size = 1 if way == "one" else CHUNKS[c % len(CHUNKS)]
        c += 1
        if way == "one":
            out.append(det.score_one(float(ts[i]), float(x[i])))
        else:
            out.extend(det.score_batch(ts[i : i + size], x[i : i + size]).tolist())
        i += size
        if i in (333, 1001):  # restarts from a checkpoint, mid-block
            det = detector_from_bytes(det.to_bytes())
    return np.array(out), det.to_bytes()


def _key(name: str, kind: str, way: str) -> str:
    return f"{name}.{kind}.{way}"


def _digest(scores: np.ndarray, state: bytes) -> bytes:
    return hashlib.sha256(scores.astype("<f8").tobytes()).digest() + hashlib.sha256(state).digest()


def record() -> None:
    arrays: dict[str, np.ndarray] = {}
    for name in DETECTORS:
        for kind in KINDS:
            for way in WAYS:
                scores, state = _run(name, kind, way)
                key = _key(name, kind, way)
                arrays[key + ".digest"] = np.frombuffer(_digest(scores, state), dtype=np.uint8)
                if name in KEPT_WHOLE:
                    arrays[key + ".scores"] = scores
                    arrays[key + ".state"] = np.frombuffer(state, dtype=np.uint8)
    FIXTURE.parent.mkdir(exist_ok=True)
    np.savez_compressed(FIXTURE, **arrays)  # type: ignore[arg-type]  # numpy stubs: **kwds vs allow_pickle


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", DETECTORS)
def test_scores_and_state_are_those_of_the_recorded_implementation(name: str, kind: str, way: str) -> None:
    key = _key(name, kind, way)
    scores, state = _run(name, kind, way)
    with np.load(FIXTURE) as ref:
        want = ref[key + ".digest"].tobytes()
        whole = (ref[key + ".scores"], ref[key + ".state"].tobytes()) if key + ".scores" in ref else None
    got = _digest(scores, state)
    if got != want and whole is not None:  # name the first score or state field that differs
        want_scores, want_state = whole
        assert scores.tobytes() == want_scores.tobytes(), np.flatnonzero(scores != want_scores)[:10]
        (_, fields), (_, want_fields) = unpack_state(state), unpack_state(want_state)
        assert list(fields) == list(want_fields)
        for field in want_fields:
            assert np.array_equal(np.asarray(fields[field]), np.asarray(want_fields[field]), equal_nan=True), field
    assert got[:32] == want[:32], "scores differ"
    assert got[32:] == want[32:], "states differ"
    assert (scores > 0).any()  # the series do exercise detections


if __name__ == "__main__" and "--record" in sys.argv:
    record()
