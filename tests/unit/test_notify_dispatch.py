"""Grouping and timing as Alertmanager's dispatch and dedup stages do them, on a fake clock."""

from __future__ import annotations

import pytest

from watchkeeper.core.errors import SourceError
from watchkeeper.core.notify.config import load_notify_config
from watchkeeper.core.notify.dispatch import Dispatcher, LogEntry, needs_update, with_priority
from watchkeeper.core.notify.matchers import parse_matchers
from watchkeeper.core.notify.pipeline import plan_flush
from watchkeeper.core.notify.silences import Silence
from watchkeeper.schemas.alerts import AlertEvent

CONFIG = """
route:
  receiver: default
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  routes:
    - matchers: ['priority="P1"']
      receiver: pager
      group_wait: 0s
      continue: true
    - matchers: ['priority="P4"']
      receiver: digest
      group_by: []
      group_wait: 1h
      group_interval: 1d
      repeat_interval: 1d
receivers:
  - name: default
    webhook_configs: [{url: "http://127.0.0.1:1/hook"}]
  - name: pager
    webhook_configs: [{url: "http://127.0.0.1:1/page"}]
  - name: digest
    webhook_configs: [{url: "http://127.0.0.1:1/digest", send_resolved: false}]
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="medium"']
    equal: [service]
"""


def alert(name: str, state: str = "firing", t: float = 0.0, **labels: str) -> AlertEvent:
    labels = {"alertname": name, **labels}
    fp = "%016x" % (hash(tuple(sorted(labels.items()))) & (2**64 - 1))
    return with_priority(AlertEvent(fingerprint=fp, rule=name, state=state,  # type: ignore[arg-type]
                                    labels=labels, starts_at=t, ends_at=t if state == "resolved" else None,
                                    event_time=t, severity=labels.get("severity", "medium")))


class Sink:
    """Drives dispatcher + pipeline with a notification log, like the notify sink does."""

    def __init__(self, text: str = CONFIG) -> None:
        self.cfg = load_notify_config(text)
        self.d = Dispatcher(self.cfg.route)
        self.log: dict[tuple[str, str], LogEntry] = {}
        self.silences: list[Silence] = []
        self.sent: list[tuple[float, str, str, list[tuple[str, str]]]] = []

    def add(self, a: AlertEvent, now: float) -> None:
        self.d.insert(a, now)

    def run_until(self, end: float, step: float = 1.0) -> None:
        t = self.now if hasattr(self, "now") else 0.0
        while t <= end:
            for g in self.d.due(t):
                firing = [a for g2 in self.d.groups.values() for a in g2.alerts.values() if a.state == "firing"]
                plan = plan_flush(self.cfg, g, t, firing, self.silences, lambda i, g=g: self.log.get((g.key, i)))
                for integ, entry in plan.log.items():
                    self.log[(g.key, integ)] = entry
                for n in plan.notifications:
                    names = sorted((a.labels["alertname"], a.state) for a in n.alerts)
                    self.sent.append((t, n.receiver, n.status, names))
                self.d.flushed(g, plan.sent)
            t += step
        self.now = t


def test_group_wait_then_group_interval_batches_alerts() -> None:
    s = Sink()
    s.add(alert("A", t=0, instance="1"), 0)
    s.run_until(10)
    s.add(alert("A", t=10, instance="2"), 10)
    s.run_until(29)
    assert s.sent == []  # group_wait 30 s holds the first notification
    s.run_until(30)
    assert s.sent == [(30, "default", "firing", [("A", "firing"), ("A", "firing")])]
    s.add(alert("A", t=40, instance="3"), 40)
    s.run_until(329)
    assert len(s.sent) == 1  # a new alert waits for group_interval (5 m after the last flush)
    s.run_until(330)
    assert s.sent[-1][0] == 330 and len(s.sent[-1][3]) == 3


def test_resolved_is_sent_at_the_next_interval_and_then_the_group_is_gone() -> None:
    s = Sink()
    a = alert("A", t=0)
    s.add(a, 0)
    s.run_until(30)
    s.add(alert("A", "resolved", t=100), 100)
    s.run_until(330)
    assert [x[2] for x in s.sent] == ["firing", "resolved"]
    assert s.d.groups == {}


def test_repeat_interval_resends_unchanged_firing_alerts() -> None:
    s = Sink()
    s.add(alert("A", t=0), 0)
    s.run_until(4 * 3600 + 30 + 300, step=30)
    times = [x[0] for x in s.sent]
    assert times[0] == 30 and len(times) == 2
    assert times[1] - times[0] >= 4 * 3600  # nothing changed: only after repeat_interval, on an interval tick


def test_an_old_alert_flushes_at_once_and_continue_tries_later_siblings() -> None:
    s = Sink()
    s.add(alert("Disk", t=-3600, severity="critical"), 0)
    s.run_until(0)
    # `continue` goes on to the siblings; none matches, so only the pager route (Alertmanager's Route.Match)
    assert [x[1] for x in s.sent] == ["pager"]
    extra = "    - matchers: ['severity=\"critical\"']\n      receiver: default\n"
    s2 = Sink(CONFIG.replace("receivers:\n", extra + "receivers:\n", 1))
    s2.add(alert("Disk", t=-3600, severity="critical"), 0)
    s2.run_until(30)
    assert sorted(x[1] for x in s2.sent) == ["default", "pager"]


def test_inhibition_and_silence_mute_but_do_not_send() -> None:
    s = Sink()
    s.add(alert("Down", t=0, severity="critical", service="db"), 0)
    s.add(alert("Slow", t=0, severity="medium", service="db"), 0)
    s.add(alert("Slow2", t=0, severity="medium", service="web"), 0)
    s.silences.append(Silence("s1", parse_matchers('alertname="Slow2"'), -1, 1000))
    s.run_until(30)
    names = sorted(n for x in s.sent for n, _ in x[3])
    assert names == ["Down"]  # to the pager; Slow is inhibited by Down (same service), Slow2 is silenced


def test_low_priority_goes_to_a_daily_digest() -> None:
    s = Sink()
    for i in range(5):
        s.add(alert(f"L{i}", t=i * 600, severity="low"), i * 600)
    s.run_until(86400, step=60)
    s.add(alert("L5", t=86400, severity="low"), 86400)
    s.run_until(86400 + 3600, step=60)
    digest = [(x[0], len(x[3])) for x in s.sent if x[1] == "digest"]
    assert digest == [(3600, 5), (86400 + 3600, 6)]  # one summary per day, with everything still firing


def test_dedup_rule() -> None:
    e = LogEntry(frozenset({"a"}), frozenset(), 0)
    assert needs_update(None, {"a"}, set(), 100, True, 1)
    assert not needs_update(None, set(), {"a"}, 100, True, 1)
    assert needs_update(e, {"a", "b"}, set(), 100, True, 1)
    assert not needs_update(e, {"a"}, set(), 100, True, 50)
    assert needs_update(e, {"a"}, set(), 100, True, 101)
    assert needs_update(e, set(), {"a"}, 100, False, 1)  # all resolved: sent regardless of send_resolved
    assert needs_update(LogEntry(frozenset({"a", "b"}), frozenset(), 0), {"a"}, {"b"}, 100, True, 1)
    assert not needs_update(LogEntry(frozenset({"a", "b"}), frozenset(), 0), {"a"}, {"b"}, 100, False, 1)


@pytest.mark.parametrize(("text", "where", "what"), [
    ("route: {receiver: x}\nreceivers: [{name: y}]\n", ":1", "receiver 'x' is not defined"),
    ("route:\n  receiver: y\n  group_wait: soon\nreceivers: [{name: y}]\n", ":3", "not a Prometheus duration"),
    ("route: {receiver: y}\nreceivers:\n  - name: y\n    carrier_pigeon_configs: []\n", ":4", "Extra inputs"),
    ("route: {receiver: y}\nreceivers: [{name: y}]\n"
     "time_intervals: [{name: x, time_intervals: [{weekdays: [someday]}]}]\n", ":3", "someday is not a valid weekday"),
    ("route:\n  receiver: y\n  routes:\n    - matchers: ['a=~\"(\"']\nreceivers: [{name: y}]\n", ":4",
     "invalid regular expression"),
    ("route: {receiver: y}\nreceivers: [{name: y, slack_configs: [{text: '{{ range .Alerts }}'}]}]\n", ":2",
     "without {{end}}"),
])
def test_config_errors_name_file_line_and_field(text: str, where: str, what: str) -> None:
    with pytest.raises(SourceError) as err:
        load_notify_config(text, "am.yml")
    assert str(err.value).startswith("am.yml" + where) and what in str(err.value)


def test_transitions_sent_again_after_a_crash_notify_nothing_new() -> None:
    """An agent that crashes between emitting alert events and checkpointing re-emits them on restart;
    the notification log absorbs them, as Alertmanager's dedup stage does."""
    s = Sink()
    s.add(alert("A", t=0, instance="1"), 0)
    s.run_until(30)
    assert len(s.sent) == 1
    s.add(alert("A", t=0, instance="1"), 60)  # the same firing transition, again
    s.run_until(30 + 3600, step=30)
    assert len(s.sent) == 1  # unchanged firing set: nothing until repeat_interval
    s.add(alert("A", "resolved", t=3700, instance="1"), 3700)
    s.run_until(3700 + 600, step=30)
    assert [x[2] for x in s.sent] == ["firing", "resolved"]
    s.add(alert("A", "resolved", t=3700, instance="1"), 4400)  # the resolution, again
    s.run_until(4400 + 4 * 3600, step=60)
    assert [x[2] for x in s.sent] == ["firing", "resolved"]
