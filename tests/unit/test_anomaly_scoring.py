"""Anomaly rules over a synthetic series with an injected level shift: given these points, expect these
alert transitions at these event times, whatever the batches, across a state round-trip through bytes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.core.anomaly_rules import AnomalyRule, load_anomaly_text
from watchkeeper.core.anomaly_scoring import AnomalyScorer, SeriesAnomaly, state_key
from watchkeeper.schemas import AlertEvent

T0, STEP = 1_700_000_000.0, 10.0
N, SHIFT = 2600, 2000  # a level shift of +15 sigma at point 2000

RULES = """anomaly:
  - name: api
    rules:
      - alert: LatencyShift
        selector: 'latency{job="api"}'
        field: p95
        threshold: 0.999
        detector: calibrated   # a calibrated rarity: 0.999 = 1 in 1,000 points
        for: 1m
        labels: {severity: high}
        annotations: {summary: "{{ $labels.instance }} latency is unusual (score {{ $value }})"}
"""
LABELS = {"__name__": "latency", "job": "api", "instance": "web-1"}
# Pending at the shift; firing 1m (6 points) later; resolved once the detectors have learnt the new
# level (the robust median and the level-shift scales have moved, 48 points on).
EXPECTED = [("pending", SHIFT), ("firing", SHIFT + 6), ("resolved", SHIFT + 48)]


def rule() -> AnomalyRule:
    return load_anomaly_text(RULES)[0].rules[0]


def series(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = T0 + STEP * np.arange(N)
    x = 100 + rng.normal(0, 2, N)
    x[SHIFT:] += 30
    return ts, x


def transitions(events: list[AlertEvent]) -> list[tuple[str, int]]:
    """(state, point index) of each event."""
    return [(e.state, round((e.event_time - T0) / STEP)) for e in events]


def run(batches: list[tuple[int, int]], restore_between: bool = False) -> list[AlertEvent]:
    r, (ts, x) = rule(), series()
    saved: dict[bytes, bytes] = {}
    scorer = AnomalyScorer(saved.get)
    events: list[AlertEvent] = []
    for a, b in batches:
        events += scorer.score(r, "00000000000000aa", LABELS, ts[a:b], x[a:b]).events
        if restore_between:  # a new process, the state read back from the table
            saved.update(scorer.take_dirty())
            scorer = AnomalyScorer(saved.get)
    return events


def test_a_level_shift_goes_pending_then_firing_after_for_then_resolved() -> None:
    events = run([(0, N)])
    assert transitions(events) == EXPECTED
    pending, firing, resolved = events
    assert pending.starts_at == firing.starts_at == resolved.starts_at == T0 + STEP * SHIFT
    assert resolved.ends_at == T0 + STEP * (SHIFT + 48)
    assert all(e.source == "anomaly" and e.rule == "LatencyShift" and e.severity == "high" for e in events)
    assert pending.labels == {"job": "api", "instance": "web-1", "severity": "high", "alertname": "LatencyShift"}
    assert pending.value >= 0.999
    assert pending.annotations["summary"].startswith("web-1 latency is unusual (score 0.99")
    assert len({e.fingerprint for e in events}) == 1


def test_the_same_transitions_whatever_the_batches_and_across_restarts() -> None:
    expected = transitions(run([(0, N)]))
    cuts = [0, 1, 7, 300, 333, 1999, 2000, 2003, 2030, N]
    batches = list(itertools.pairwise(cuts))
    assert transitions(run(batches)) == expected
    assert transitions(run(batches, restore_between=True)) == expected


def test_points_read_again_after_a_restart_are_not_scored_twice() -> None:
    r, (ts, x) = rule(), series()
    scorer = AnomalyScorer()
    first = scorer.score(r, "s", LABELS, ts[:2003], x[:2003])
    again = scorer.score(r, "s", LABELS, ts[1990:], x[1990:])  # 13 points it has already scored
    assert again.skipped == 13 and first.scored + again.scored == N
    assert scorer.score(r, "s", LABELS, ts[-1:], x[-1:]).skipped == 1  # one point, already scored
    assert transitions(first.events + again.events) == transitions(run([(0, N)]))


def test_quiet_while_learning() -> None:
    """The ensemble scores 0 (no alert) while it fills its first window: 32 points deciding gauge or
    counter, then 288 points."""
    r = rule()
    det = r.new_detector()
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, 400)
    x[[10, 100, 250]] = 1e6  # enormous spikes, before the detector knows the series
    scores = det.score_batch(T0 + STEP * np.arange(400), x)
    assert (scores[:320] == 0).all()


def test_each_series_has_its_own_alert() -> None:
    r, (ts, x) = rule(), series()
    scorer = AnomalyScorer()
    flat = 100 + np.random.default_rng(5).normal(0, 2, N)
    shifted = scorer.score(r, "a", {**LABELS, "instance": "web-1"}, ts, x).events
    quiet = scorer.score(r, "b", {**LABELS, "instance": "web-2"}, ts, flat).events
    # The quiet series' points come later in this call order, yet they do not resolve web-1's alert.
    assert transitions(shifted) == transitions(run([(0, N)]))
    assert all(e.labels["instance"] == "web-2" for e in quiet)


def test_non_finite_points_are_skipped() -> None:
    r, (ts, x) = rule(), series()
    x = x.copy()
    x[[5, 50]] = np.nan
    res = AnomalyScorer().score(r, "s", LABELS, ts, x)
    assert res.skipped == 2 and res.scored == N - 2


def test_an_unreadable_saved_state_starts_the_series_afresh() -> None:
    r, (ts, x) = rule(), series()
    scorer = AnomalyScorer(lambda key: b"\x00\x00\x00\x02{}garbage")
    res = scorer.score(r, "s", LABELS, ts[:10], x[:10])
    assert scorer.unreadable == 1 and res.scored == 10
    with pytest.raises(Exception, match="unreadable anomaly state"):
        SeriesAnomaly.from_bytes(b"\x00\x00\x00\x02{}garbage", r)
    assert state_key(r, "s") == b"api/LatencyShift\x00s"


def test_a_detector_saved_while_learning_keeps_its_not_a_number_scalars() -> None:
    """JSON has no NaN: the state codec keeps non-finite scalars apart (they came back as None before)."""
    from watchkeeper.core.detectors import detector_from_bytes

    ts, x = series()
    whole = rule().new_detector().score_batch(ts[:600], x[:600])
    det = rule().new_detector()
    det.score_batch(ts[:5], x[:5])
    again = detector_from_bytes(det.to_bytes())
    assert np.isnan(again.seasonal.res_med)  # type: ignore[attr-defined]
    np.testing.assert_allclose(again.score_batch(ts[5:600], x[5:600]), whole[5:])


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=N - 1), max_size=8, unique=True), st.booleans())
def test_any_batches_and_any_restarts_give_the_same_transitions(cuts: list[int], restore: bool) -> None:
    assert transitions(run(list(itertools.pairwise([0, *sorted(cuts), N])), restore)) == EXPECTED
