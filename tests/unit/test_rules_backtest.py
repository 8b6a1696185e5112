"""Given alert transitions, expect the spans, per-rule summaries, comparison and thresholds a backtest reports."""

from __future__ import annotations

import math

from watchkeeper.core.rules.backtest import Threshold, alert_spans, compare, summarize, threshold_of
from watchkeeper.schemas.alerts import AlertEvent


def ev(state: str, at: float, starts: float, host: str = "a", rule: str = "High", value: float = 1.0) -> AlertEvent:
    labels = {"alertname": rule, "host": host}
    return AlertEvent(fingerprint=f"{rule}-{host}", rule=rule, state=state, labels=labels, value=value,
                      starts_at=starts, ends_at=at if state == "resolved" else None, event_time=at)


def test_threshold_of_a_scalar_comparison_either_side() -> None:
    assert threshold_of("rate(x[5m]) > 0.5") == Threshold("rate(x{}[5m])", ">", 0.5)
    assert threshold_of("(10 < y)") == Threshold("y{}", ">", 10.0)
    assert threshold_of("x > bool 3") is None
    assert threshold_of("x > y") is None
    assert threshold_of("absent(x)") is None


def test_spans_summary_flaps_and_pending_only() -> None:
    events = [
        ev("pending", 0, 0), ev("firing", 60, 0), ev("resolved", 300, 0),
        ev("pending", 600, 600), ev("firing", 660, 600), ev("resolved", 900, 600),  # re-fires 360 s later: flap
        ev("pending", 100, 100, host="b"), ev("resolved", 130, 100, host="b"),  # never fired
        ev("firing", 5000, 4990, host="c"),  # still firing at the end, no `for`
    ]
    spans = alert_spans(events)
    assert [(s.labels["host"], s.pending_at, s.firing_at, s.resolved_at) for s in spans] == [
        ("a", 0, 60, 300), ("b", 100, None, 130), ("a", 600, 660, 900), ("c", 4990, 5000, None)]
    [high, other] = summarize(spans, ["High", "Other"], 0, 6000, flap_window=1800)
    assert (high.alerts, high.fired, high.flaps, high.pending_only) == (4, 3, 1, 1)
    assert high.firing_seconds == (300 - 60) + (900 - 660) + (6000 - 5000)
    assert high.pending_to_firing == [60, 60, 10] and high.median_pending_to_firing == 60
    assert (other.alerts, other.fired) == (0, 0) and math.isnan(other.median_pending_to_firing)
    # A shorter flap window does not count the re-firing; firing time is clipped to the range.
    [clipped] = summarize(spans, ["High"], 200, 700, flap_window=300)
    assert clipped.flaps == 0 and clipped.firing_seconds == (300 - 200) + (700 - 660)


def test_compare_matches_on_fingerprint_state_and_time() -> None:
    back = [ev("pending", 0, 0), ev("firing", 60, 0), ev("resolved", 300, 0)]
    live = [ev("pending", 0, 0), ev("firing", 60.0004, 0), ev("resolved", 330, 0)]
    c = compare(back, live)
    assert [e.state for e in c.matched] == ["pending", "firing"]
    assert [(e.state, e.event_time) for e in c.only_backtest] == [("resolved", 300)]
    assert [(e.state, e.event_time) for e in c.only_live] == [("resolved", 330)]
    assert not c.identical and compare(back, back).identical
