"""Alert timing as Prometheus' alerting_test.go has it: given the condition at these ticks, expect
these state changes at these times."""

from __future__ import annotations

from watchkeeper.core.alert_state import AlertRuleState, fingerprint

UP = [({"job": "api", "severity": "critical"}, 1.0)]


def run(rule: AlertRuleState, condition: dict[int, bool], minutes: int) -> list[tuple[int, str]]:
    out = []
    for m in range(minutes + 1):
        for ev in rule.evaluate(m * 60.0, UP if condition.get(m, False) else []):
            out.append((m, ev.state))
    return out


def test_pending_then_firing_after_for_then_resolved() -> None:
    rule = AlertRuleState("HighErrors", hold=300)
    cond = {m: 1 <= m <= 8 for m in range(12)}
    assert run(rule, cond, 11) == [(1, "pending"), (6, "firing"), (9, "resolved")]


def test_for_zero_fires_at_the_first_evaluation() -> None:
    rule = AlertRuleState("Down")
    assert run(rule, {0: True, 1: True, 2: False}, 3) == [(0, "firing"), (2, "resolved")]


def test_pending_that_vanishes_is_resolved_without_firing() -> None:
    rule = AlertRuleState("Flappy", hold=300)
    assert run(rule, {0: True, 1: True, 2: False, 3: True}, 4) == [
        (0, "pending"), (2, "resolved"), (3, "pending"), (4, "resolved")
    ]


def test_keep_firing_for_holds_a_firing_alert() -> None:
    rule = AlertRuleState("Sticky", keep_firing_for=120)
    # condition true at 0..2, gone from 3: keeps firing at 3 and 4, resolved at 5
    assert run(rule, {0: True, 1: True, 2: True}, 6) == [(0, "firing"), (5, "resolved")]


def test_keep_firing_resets_when_the_condition_returns() -> None:
    rule = AlertRuleState("Sticky", keep_firing_for=120)
    cond = {0: True, 3: True}
    # gone at 1,2 (kept), back at 3 (reset), gone from 4: kept at 4, 5, resolved at 6
    assert run(rule, cond, 7) == [(0, "firing"), (6, "resolved")]


def test_event_shape_and_fingerprint() -> None:
    rule = AlertRuleState("HighErrors", hold=0)
    (ev,) = rule.evaluate(100.0, UP, annotate=lambda labels, v: {"summary": f"{labels['job']} at {v}"})
    assert ev.labels == {"job": "api", "severity": "critical", "alertname": "HighErrors"}
    assert ev.fingerprint == fingerprint(ev.labels) and len(ev.fingerprint) == 16
    assert (ev.severity, ev.starts_at, ev.ends_at, ev.event_time) == ("critical", 100.0, None, 100.0)
    assert ev.annotations == {"summary": "api at 1.0"}
    (res,) = rule.evaluate(160.0, [])
    assert (res.state, res.starts_at, res.ends_at) == ("resolved", 100.0, 160.0)


def test_each_label_set_is_its_own_alert() -> None:
    rule = AlertRuleState("Disk", hold=60)
    a, b = ({"mount": "/"}, 91.0), ({"mount": "/var"}, 95.0)
    assert [e.state for e in rule.evaluate(0, [a, b])] == ["pending", "pending"]
    evs = rule.evaluate(60, [a])
    assert sorted((e.labels["mount"], e.state) for e in evs) == [("/", "firing"), ("/var", "resolved")]
