"""Acknowledgements on a fake clock: an ack stops the repeats of the firing it covers, never the next firing,
and expires; as promtool tests read: given these alerts and acks, expect these notifications at these times."""

from __future__ import annotations

import math

import pytest

from watchkeeper.core.notify.acks import Ack, AckError, ack_note, acked_by
from watchkeeper.core.notify.config import load_notify_config
from watchkeeper.core.notify.dispatch import Dispatcher, LogEntry
from watchkeeper.core.notify.pipeline import plan_flush
from watchkeeper.schemas.alerts import AlertEvent

CONFIG = """
route:
  receiver: team
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 10m
receivers:
  - name: team
    webhook_configs: [{url: "http://127.0.0.1:1/hook"}]
"""


def alert(name: str, state: str = "firing", starts: float = 0.0, **labels: str) -> AlertEvent:
    labels = {"alertname": name, **labels}
    return AlertEvent(fingerprint=f"fp-{name}-{labels.get('instance', '')}", rule=name, state=state,  # type: ignore[arg-type]
                      labels=labels, starts_at=starts, ends_at=None if state == "firing" else starts + 1,
                      event_time=starts)


class Sink:
    def __init__(self) -> None:
        self.cfg = load_notify_config(CONFIG)
        self.d = Dispatcher(self.cfg.route)
        self.log: dict[tuple[str, str], LogEntry] = {}
        self.acks: list[Ack] = []
        self.sent: list[tuple[float, str, list[str]]] = []
        self.muted: list[tuple[float, str, str]] = []
        self.t = 0.0

    def run_until(self, end: float, step: float = 10.0) -> None:
        while self.t <= end:
            for g in self.d.due(self.t):
                plan = plan_flush(self.cfg, g, self.t, [], [], lambda i, g=g: self.log.get((g.key, i)), acks=self.acks)
                self.log.update({(g.key, i): e for i, e in plan.log.items()})
                self.sent += [(self.t, n.status, sorted(a.fingerprint for a in n.alerts)) for n in plan.notifications]
                self.muted += [(self.t, a.fingerprint, why) for a, why, _ in plan.muted]
                self.d.flushed(g, plan.sent)
            self.t += step


def test_an_ack_stops_repeats_until_the_alert_resolves_and_the_next_firing_notifies() -> None:
    s = Sink()
    s.d.insert(alert("Down", starts=0), 0)
    s.run_until(60)
    assert [x[:2] for x in s.sent] == [(0, "firing")]
    s.acks.append(Ack.of("a1", 100, "alice", "restarting db", fingerprint="fp-Down-"))
    s.run_until(3600)
    assert [x[:2] for x in s.sent] == [(0, "firing")]  # no repeat at 600, 1200, ... while acknowledged
    assert {m[2] for m in s.muted} == {"ack_suppressed"}
    s.d.insert(alert("Down", "resolved", starts=0), 3600)
    s.run_until(3700)
    assert [x[:2] for x in s.sent] == [(0, "firing"), (3660, "resolved")]  # the resolution is still told
    s.d.insert(alert("Down", starts=4000), 4000)  # fires again after the ack: a new firing, not covered
    s.run_until(4100)
    assert [x[:2] for x in s.sent][-1] == (4000, "firing")


def test_without_an_ack_the_repeat_interval_resends() -> None:
    s = Sink()
    s.d.insert(alert("Down", starts=0), 0)
    s.run_until(1400)
    assert [x[0] for x in s.sent] == [0, 660, 1320]  # Alertmanager: strictly more than repeat_interval, on a tick


def test_an_expired_ack_lets_the_repeats_resume() -> None:
    s = Sink()
    s.d.insert(alert("Down", starts=0), 0)
    s.acks.append(Ack.of("a1", 30, "bob", "looking", fingerprint="fp-Down-", expires_at=900))
    s.run_until(1300)
    # first notification at 0 (before the ack); the repeat due at 660 is held; at 900 the ack expires
    assert [x[0] for x in s.sent] == [0, 900]


def test_a_matcher_ack_covers_alerts_firing_when_made_but_not_new_ones_in_the_same_group() -> None:
    s = Sink()
    s.d.insert(alert("Disk", starts=0, instance="a"), 0)
    s.run_until(50)
    s.acks.append(Ack.of("a1", 50, "carol", "cleaning up", matchers='alertname="Disk"'))
    s.run_until(100)
    s.d.insert(alert("Disk", starts=100, instance="b"), 100)
    s.run_until(120)
    # b is new (started after the ack): it is notified, alone; a stays acknowledged
    assert s.sent[-1] == (120, "firing", ["fp-Disk-b"])


def test_ack_semantics_alone() -> None:
    a = Ack.of("id1", 100, "dan", "on it", matchers='alertname="X", severity=~"crit.*"', expires_at=200)
    firing = alert("X", starts=90, severity="critical")
    assert a.covers(firing, 150)
    assert not a.covers(firing, 200)  # expired
    assert not a.covers(alert("X", starts=101, severity="critical"), 150)  # began after the ack
    assert not a.covers(alert("X", "resolved", starts=90, severity="critical"), 150)
    assert not a.covers(alert("X", starts=90, severity="warning"), 150)
    assert acked_by([a], firing, 150) is a and acked_by([a], firing, 250) is None
    assert a.state(150) == "active" and a.state(200) == "expired"
    assert ack_note(a).startswith("acknowledged by dan (id1, {alertname=\"X\",severity=~\"crit.*\"}, expires ")
    assert math.isinf(Ack.of("i", 0, "x", "c", fingerprint="f").expires_at)


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"fingerprint": "f", "matchers": 'a="b"'}, "either a fingerprint or matchers"),
    ({}, "either a fingerprint or matchers"),
    ({"fingerprint": "f", "comment": " "}, "needs a comment"),
    ({"fingerprint": "f", "expires_at": 5.0}, "expires before"),
    ({"matchers": 'a=~"("'}, "invalid regular expression"),
])
def test_bad_acks_say_what_to_give(kwargs: dict[str, object], error: str) -> None:
    args: dict[str, object] = {"comment": "why"} | kwargs
    comment = str(args.pop("comment"))
    with pytest.raises(AckError, match=error):
        Ack.of("i", 10, "x", comment, **args)  # type: ignore[arg-type]
