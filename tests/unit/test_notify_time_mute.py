"""Routes with `mute_time_intervals` / `active_time_intervals`: loaded with Alertmanager's checks, and a
flush inside a mute interval records `muted` with the interval's name instead of notifying."""

from __future__ import annotations

import hashlib
from datetime import datetime

import pytest

from watchkeeper.core.errors import SourceError
from watchkeeper.core.notify.config import load_notify_config
from watchkeeper.core.notify.dispatch import Dispatcher, LogEntry
from watchkeeper.core.notify.pipeline import plan_flush
from watchkeeper.schemas.alerts import AlertEvent

CONFIG = """
route:
  receiver: default
  group_by: [alertname]
  group_wait: 0s
  group_interval: 5m
  routes:
    - matchers: ['team="db"']
      receiver: db
      mute_time_intervals: [sunday-maintenance]
      routes:
        - matchers: ['severity="page"']
    - matchers: ['team="web"']
      receiver: web
      active_time_intervals: [business-hours]
receivers:
  - name: default
  - name: db
    webhook_configs: [{url: "http://127.0.0.1:1/db"}]
  - name: web
    webhook_configs: [{url: "http://127.0.0.1:1/web"}]
time_intervals:
  - name: sunday-maintenance
    time_intervals:
      - weekdays: [sunday]
        times:
          - start_time: 02:00
            end_time: 04:00
mute_time_intervals:
  - name: business-hours
    time_intervals:
      - weekdays: ['monday:friday']
        times: [{start_time: 09:00, end_time: 17:00}]
        location: Europe/Berlin
"""

SUNDAY_0230 = datetime.fromisoformat("2026-12-06T02:30:00+00:00").timestamp()


def fire(labels: dict[str, str], t: float) -> AlertEvent:
    fp = hashlib.sha1(repr(sorted(labels.items())).encode()).hexdigest()[:16]
    return AlertEvent(fingerprint=fp, rule=labels["alertname"], state="firing", labels=labels, starts_at=t,
                      event_time=t, severity="page")


def flush_at(text: str, labels: dict[str, str], now: float, log: LogEntry | None = None) -> tuple[list[str], list]:
    cfg = load_notify_config(text)
    d = Dispatcher(cfg.route)
    d.insert(fire(labels, now), now)
    out, muted = [], []
    for g in d.due(now):
        plan = plan_flush(cfg, g, now, [], [], lambda _i: log)
        out += [n.receiver for n in plan.notifications]
        muted += [(status, why) for _a, status, why in plan.muted]
    return out, muted


@pytest.mark.parametrize(("labels", "now", "sent", "muted"), [
    ({"alertname": "A", "team": "db"}, SUNDAY_0230, [], [("muted", "muted by time interval sunday-maintenance")]),
    ({"alertname": "A", "team": "db"}, SUNDAY_0230 + 3600 * 2, ["db"], []),  # 04:30: over
    # a child route does not inherit its parent's mute_time_intervals (Alertmanager's NewRoute)
    ({"alertname": "A", "team": "db", "severity": "page"}, SUNDAY_0230, ["db"], []),
    ({"alertname": "A", "team": "web"}, SUNDAY_0230, [], [("muted", "muted by time interval business-hours")]),
    ({"alertname": "A", "team": "web"}, SUNDAY_0230 + 86400 + 8 * 3600, ["web"], []),  # Monday 11:30 Berlin
])
def test_flush_is_muted_inside_the_interval(labels: dict[str, str], now: float, sent: list[str],
                                            muted: list[tuple[str, str]]) -> None:
    assert flush_at(CONFIG, labels, now) == (sent, muted)


def test_a_muted_flush_leaves_the_log_so_the_next_flush_after_the_interval_notifies() -> None:
    cfg = load_notify_config(CONFIG)
    d = Dispatcher(cfg.route)
    log: dict[str, LogEntry] = {}
    t = SUNDAY_0230
    d.insert(fire({"alertname": "A", "team": "db"}, t), t)
    sent_at = []
    while t < SUNDAY_0230 + 3 * 3600:
        for g in d.due(t):
            plan = plan_flush(cfg, g, t, [], [], log.get)
            log.update(plan.log)
            sent_at += [t for _ in plan.notifications]
        t += 60
    assert [datetime.fromtimestamp(x).strftime("%H:%M") for x in sent_at] == ["04:00"]


@pytest.mark.parametrize(("change", "at", "field", "message"), [
    (("mute_time_intervals: [sunday-maintenance]", "mute_time_intervals: [nope]"), "mute_time_intervals: [nope]",
     "route.routes.0.mute_time_intervals.0", "undefined time interval 'nope' used in route"),
    (("  - name: business-hours", "  - name: sunday-maintenance"), "  - name: sunday-maintenance",
     "time_intervals.0.name", "time interval 'sunday-maintenance' is not unique"),
    (("weekdays: [sunday]", "weekdays: ['saturday:sunday']"), "weekdays: ['saturday:sunday']",
     "time_intervals.0.time_intervals.0.weekdays.0", "start day cannot be before end day"),
    (("start_time: 02:00", "start_time: 05:00"), "- start_time: 05:00",
     "time_intervals.0.time_intervals.0.times.0", "start time cannot be equal or greater than end time"),
    (("location: Europe/Berlin", "location: Europe/Atlantis"), "location: Europe/Atlantis",
     "mute_time_intervals.0.time_intervals.0.location", "unknown time zone Europe/Atlantis"),
    (("  group_by: [alertname]", "  group_by: [alertname]\n  mute_time_intervals: [sunday-maintenance]"),
     "  mute_time_intervals: [sunday-maintenance]", "route.mute_time_intervals",
     "the root route must not have any mute time intervals"),
])
def test_refused_like_alertmanager_with_the_line(change: tuple[str, str], at: str, field: str,
                                                 message: str) -> None:
    text = CONFIG.replace(*change, 1)
    with pytest.raises(SourceError) as exc:
        load_notify_config(text, "am.yml")
    line = text[:text.index(at)].count("\n") + 1
    assert (exc.value.line, exc.value.field, exc.value.message) == (line, field, message), str(exc.value)
