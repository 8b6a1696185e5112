"""Escalation policies on a fake clock, driven as the notification sink drives them (dispatcher, pipeline,
escalator), with a restart that keeps only what the sink stores: given an unacknowledged critical alert,
expect levels 1, 2, 3 at the configured delays; an ack holds it; a resolution tells every level and ends it."""

from __future__ import annotations

import pytest

from watchkeeper.core.errors import SourceError
from watchkeeper.core.notify.acks import Ack
from watchkeeper.core.notify.config import load_notify_config
from watchkeeper.core.notify.dispatch import Dispatcher
from watchkeeper.core.notify.escalation import EscalationState, Escalator, describe
from watchkeeper.core.notify.pipeline import plan_flush
from watchkeeper.schemas.alerts import AlertEvent

CONFIG = """
escalation_policies:
  - name: ops-tech-external
    levels:
      - {receivers: [ops], after: 15m}
      - {receivers: [tech, ops], after: 30m}
      - {receivers: [external]}
route:
  receiver: ops
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  routes:
    - matchers: ['severity="critical"']
      escalation: ops-tech-external
receivers:
  - name: ops
    webhook_configs: [{url: "http://127.0.0.1:1/ops"}]
  - name: tech
    webhook_configs: [{url: "http://127.0.0.1:1/tech"}]
  - name: external
    webhook_configs: [{url: "http://127.0.0.1:1/external"}]
"""


def alert(name: str, state: str = "firing", starts: float = 0.0, severity: str = "critical") -> AlertEvent:
    return AlertEvent(fingerprint=f"fp-{name}", rule=name, state=state,  # type: ignore[arg-type]
                      labels={"alertname": name, "severity": severity}, starts_at=starts,
                      ends_at=None if state == "firing" else starts + 1, event_time=starts)


class Sink:
    """The notify sink's flush loop without Kafka or SQLite; `restart` keeps what the sink stores."""

    def __init__(self, stored: dict | None = None) -> None:  # type: ignore[type-arg]
        self.cfg = load_notify_config(CONFIG)
        stored = stored or {"alerts": {}, "log": {}, "escalations": {}}
        self.stored = stored
        self.d = Dispatcher(self.cfg.route)
        self.esc = Escalator(self.cfg.escalation_policies,
                             {k: EscalationState.from_json(v) for k, v in stored["escalations"].items()})
        self.acks: list[Ack] = []
        self.sent: list[tuple[float, str, str]] = []  # (time, receiver, status)
        self.steps: list[tuple[float, int, bool]] = []  # (time, level, held)
        self.t = 0.0

    def restart(self, now: float) -> Sink:
        s = Sink(self.stored)
        s.t, s.acks = now, self.acks
        for a in self.stored["alerts"].values():
            s.d.insert(a, now)
        return s

    def insert(self, a: AlertEvent) -> None:
        self.stored["alerts"][a.fingerprint] = a
        self.d.insert(a, self.t)

    def run_until(self, end: float, step: float = 10.0) -> None:
        while self.t <= end:
            now = self.t
            for key in self.esc.due(now):
                if key in self.d.groups:
                    self.d.groups[key].next_flush = now
            for g in self.d.due(now):
                plan = plan_flush(self.cfg, g, now, [], [], lambda i, g=g: self.stored["log"].get((g.route.receiver,
                                  g.key, i)), acks=self.acks)
                self._take(g.route.receiver, g.key, plan, now)
                if g.route.escalation:
                    muted = {a.fingerprint for a, _, _ in plan.muted}
                    unacked = any(a.state == "firing" and a.fingerprint not in muted for a in g.alerts.values())
                    st = self.esc.on_flush(g.key, g.route.escalation, now, unacked)
                    if st is not None:
                        self.stored["escalations"][g.key] = st.to_json()
                        self.steps.append((now, st.level, st.held))
                for r in self.esc.receivers(g.key):
                    if r != g.route.receiver:
                        lp = plan_flush(self.cfg, g, now, [], [], lambda i, g=g, r=r: self.stored["log"].get(
                            (r, g.key, i)), acks=self.acks, receiver_name=r)
                        self._take(r, g.key, lp, now)
                self.d.flushed(g, plan.sent)
                if g.key not in self.d.groups and self.esc.end(g.key):
                    del self.stored["escalations"][g.key]
            self.t += step

    def _take(self, receiver: str, key: str, plan: object, now: float) -> None:
        for integ, e in plan.log.items():  # type: ignore[attr-defined]
            self.stored["log"][(receiver, key, integ)] = e
        self.sent += [(now, n.receiver, n.status) for n in plan.notifications]  # type: ignore[attr-defined]

    def told(self, receiver: str) -> list[tuple[float, str]]:
        return [(t, s) for t, r, s in self.sent if r == receiver]


def test_an_unacknowledged_alert_reaches_levels_1_2_3_at_the_configured_delays() -> None:
    s = Sink()
    s.insert(alert("Down"))
    s.run_until(3 * 3600)
    assert s.steps == [(30, 1, False), (930, 2, False), (2730, 3, False)]  # 30 s group_wait, +15 m, +30 m
    assert s.told("ops") == [(30, "firing")]
    assert s.told("tech") == [(930, "firing")]
    assert s.told("external") == [(2730, "firing")]


def test_a_restart_mid_policy_neither_restarts_nor_skips_a_level() -> None:
    s = Sink()
    s.insert(alert("Down"))
    s.run_until(1000)  # level 2 reached at 930
    s = s.restart(2000)  # down from 1000 to 2000; level 3 is due at 2730
    s.run_until(3 * 3600)
    assert s.steps == [(2730, 3, False)]
    assert s.told("ops") == [] and s.told("tech") == []  # told before the restart; the log remembers
    assert s.told("external") == [(2730, "firing")]


def test_a_restart_past_a_deadline_reaches_the_next_level_then_and_gives_it_its_full_delay() -> None:
    s = Sink()
    s.insert(alert("Down"))
    s.run_until(100)  # level 1 since 30
    s = s.restart(5000)  # level 2 was due at 930, level 3 would have been due at 2730
    s.run_until(3 * 3600)
    assert [(t, lv) for t, lv, _ in s.steps] == [(5000, 2), (5000 + 1800, 3)]


def test_an_ack_at_level_2_holds_the_escalation_and_its_expiry_lets_it_go_on() -> None:
    s = Sink()
    s.insert(alert("Down"))
    s.run_until(1000)
    s.acks.append(Ack.of("a", 1000, "tina", "on it", fingerprint="fp-Down", expires_at=5000))
    s.run_until(4990)
    assert [lv for _, lv, held in s.steps] == [1, 2, 2] and s.steps[-1] == (2730, 2, True)  # held, not escalated
    assert s.told("external") == []
    s.run_until(6000)
    # the ack expired at 5000: the next group flush escalates (5 m group_interval ticks from 2730)
    assert s.steps[-1][1] == 3 and 5000 <= s.steps[-1][0] <= 5000 + 300
    assert s.told("external") == [(s.steps[-1][0], "firing")]


def test_resolution_tells_every_level_that_was_notified_and_ends_the_escalation() -> None:
    s = Sink()
    s.insert(alert("Down"))
    s.run_until(1000)
    s.insert(alert("Down", "resolved"))
    s.run_until(4000)
    assert s.told("ops") == [(30, "firing"), (1230, "resolved")]
    assert s.told("tech") == [(930, "firing"), (1230, "resolved")]
    assert s.told("external") == [] and s.stored["escalations"] == {} and s.esc.states == {}
    s.run_until(5000)
    s.insert(alert("Down", starts=5000))  # a new firing starts a new escalation at level 1
    s.run_until(5100)
    assert s.steps[-1] == (5040, 1, False)


def test_routes_without_a_policy_do_not_escalate() -> None:
    s = Sink()
    s.insert(alert("Minor", severity="warning"))
    s.run_until(7200)
    assert s.steps == [] and s.told("tech") == [] and s.told("ops") == [(30, "firing")]


def test_state_round_trip_and_description() -> None:
    st = EscalationState("k", "ops-tech-external", 2, 1_800_000_000.0, False, [(1, 1.0), (2, 1_800_000_000.0)])
    assert EscalationState.from_json(st.to_json()) == st
    policy = load_notify_config(CONFIG).escalation_policies["ops-tech-external"]
    assert describe(policy, st) == "level 2 of 3 (ops-tech-external) since 2027-01-15T08:00:00.000Z, not acknowledged"
    assert policy.receivers_up_to(3) == ["ops", "tech", "external"]
    assert st.deadline(policy) == 1_800_000_000.0 + 1800


@pytest.mark.parametrize(("change", "field", "error"), [
    (("{receivers: [tech, ops], after: 30m}", "{receivers: [tech, nobody], after: 30m}"),
     "escalation_policies.0.levels.1.receivers.1", "receiver 'nobody' is not defined"),
    (("{receivers: [ops], after: 15m}", "{receivers: [ops]}"), "escalation_policies.0.levels.0.after",
     "every level but the last needs `after`"),
    (("escalation: ops-tech-external", "escalation: nope"), "route.routes.0.escalation",
     "escalation policy 'nope' is not defined"),
    (("after: 15m}", "after: soon}"), "escalation_policies.0.levels.0.after", "not a Prometheus duration"),
])
def test_config_errors_name_the_field(change: tuple[str, str], field: str, error: str) -> None:
    text = CONFIG.replace(*change)
    assert text != CONFIG
    with pytest.raises(SourceError) as info:
        load_notify_config(text)
    assert info.value.field is not None and field in info.value.field and error in str(info.value)
