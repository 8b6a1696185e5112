"""Aggregation groups and their timers, after Alertmanager's dispatch.go, plus its dedup rule
(notify.go DedupStage). Pure: the caller passes `now`, so tests drive a fake clock and a restarted sink
rebuilds the same groups from its stored alerts.

- An alert goes into one group per matching route, keyed by the route and its `group_by` labels.
- A new group flushes after `group_wait` (at once if the alert is older than that), then every
  `group_interval`.
- A flush notifies an integration only if the firing set grew, or (with `send_resolved`) alerts
  resolved, or everything resolved, or `repeat_interval` passed since the last notification.
- Resolved alerts leave the group after a flush that covered them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from watchkeeper.core.notify.config import Route
from watchkeeper.core.notify.notification import labels_str
from watchkeeper.schemas.alerts import AlertEvent

PRIORITY = {"critical": "P1", "page": "P1", "high": "P2", "error": "P2", "medium": "P3", "warning": "P3",
            "ticket": "P3", "low": "P4", "info": "P4"}


def with_priority(event: AlertEvent) -> AlertEvent:
    """Severity levels P1-P4 as a `priority` label (critical, high, medium, low), so routes can match
    either `severity` or `priority`."""
    if "priority" in event.labels:
        return event
    sev = event.labels.get("severity", event.severity)
    prio = PRIORITY.get(sev.lower())
    if prio is None:
        return event
    return event.model_copy(update={"labels": {**event.labels, "priority": prio}})


@dataclass
class Group:
    route: Route
    labels: dict[str, str]
    key: str
    next_flush: float
    alerts: dict[str, AlertEvent] = field(default_factory=dict)
    has_flushed: bool = False


@dataclass
class LogEntry:
    """What an integration was last told about a group (Alertmanager's notification log entry)."""

    firing: frozenset[str]
    resolved: frozenset[str]
    time: float


def group_key(route: Route, labels: dict[str, str]) -> str:
    return f"{route.key}:{labels_str(labels)}"


class Dispatcher:
    def __init__(self, route: Route) -> None:
        self.route = route
        self.groups: dict[str, Group] = {}

    def insert(self, event: AlertEvent, now: float) -> list[Group]:
        """Put a firing or resolved alert into its groups (pending alerts are not Alertmanager's business)."""
        if event.state == "pending":
            return []
        touched = []
        for route in self.route.match(event.labels):
            gl = route.group_labels(event.labels)
            key = group_key(route, gl)
            g = self.groups.get(key)
            if g is None:
                g = self.groups[key] = Group(route, gl, key, now + route.group_wait)
            g.alerts[event.fingerprint] = event
            if not g.has_flushed and event.starts_at + route.group_wait < now:
                g.next_flush = min(g.next_flush, now)
            touched.append(g)
        return touched

    def next_deadline(self) -> float | None:
        return min((g.next_flush for g in self.groups.values()), default=None)

    def due(self, now: float) -> list[Group]:
        """Groups whose timer expired; their next flush is set `group_interval` ahead."""
        out = []
        for g in self.groups.values():
            if g.next_flush <= now:
                g.next_flush = now + g.route.group_interval
                g.has_flushed = True
                out.append(g)
        return out

    def flushed(self, g: Group, sent: list[AlertEvent]) -> None:
        """Drop resolved alerts the flush covered (unless they changed since) and empty groups."""
        for a in sent:
            cur = g.alerts.get(a.fingerprint)
            if cur is not None and cur.state == "resolved" and cur == a:
                del g.alerts[a.fingerprint]
        if not g.alerts:
            self.groups.pop(g.key, None)


def needs_update(entry: LogEntry | None, firing: set[str], resolved: set[str], repeat_interval: float,
                 send_resolved: bool, now: float) -> bool:
    """Alertmanager's DedupStage.needsUpdate."""
    if entry is None:
        return len(firing) > 0
    if not firing <= entry.firing:
        return True
    if not firing:
        return len(entry.firing) > 0
    if send_resolved and not resolved <= entry.resolved:
        return True
    return entry.time < now - repeat_interval
