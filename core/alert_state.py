"""The alert state machine, after Prometheus' rules/alerting.go: one `Eval` per tick moves each alert
inactive -> pending -> firing after `for`, holds it firing for `keep_firing_for` once its condition is
gone, and resolves it. Time comes in as an argument, so tests and replays drive it with any timeline.

Every state change comes out as a `schemas.AlertEvent` (the rule, anomaly and SLO agents share this).
Unlike Prometheus, which never tells Alertmanager about a pending alert that vanished, a vanished pending
alert is published as `resolved` too, so every consumer of `wk.alerts` can close what it saw open;
notification routing only notifies resolutions of alerts that had fired.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from watchkeeper.schemas.alerts import AlertEvent, AlertSource
from watchkeeper.schemas.series_id import format_series_id, series_id

RESOLVED_RETENTION = 15 * 60.0  # Prometheus keeps resolved alerts this long (and re-sends them)

Annotator = Callable[[Mapping[str, str], float], dict[str, str]]


class AlertState(enum.Enum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"


@dataclass
class Alert:
    labels: dict[str, str]
    value: float
    active_at: float
    state: AlertState = AlertState.PENDING
    annotations: dict[str, str] = field(default_factory=dict)
    fired_at: float | None = None
    resolved_at: float | None = None
    keep_firing_since: float | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)

    def to_json(self) -> dict[str, object]:
        """The alert as checkpoints store it (the rule engine's and the anomaly scorer's alike)."""
        return {"labels": self.labels, "value": self.value, "active_at": self.active_at, "state": self.state.value,
                "annotations": self.annotations, "fired_at": self.fired_at, "resolved_at": self.resolved_at,
                "keep_firing_since": self.keep_firing_since}

    @classmethod
    def from_json(cls, a: Mapping[str, Any]) -> Alert:
        """The inverse of `to_json`; a missing key raises KeyError, a bad state ValueError."""
        return cls(a["labels"], a["value"], a["active_at"], AlertState(a["state"]), a["annotations"],
                   a["fired_at"], a["resolved_at"], a["keep_firing_since"])


def fingerprint(labels: Mapping[str, str]) -> str:
    """16 hex digits of the alert's identity: its labels, `alertname` (the rule name) among them."""
    return format_series_id(series_id(labels.get("alertname", ""), labels))


class AlertRuleState:
    """The active alerts of one alerting rule."""

    def __init__(self, name: str, hold: float = 0.0, keep_firing_for: float = 0.0,
                 source: AlertSource = "rule") -> None:
        self.name = name
        self.hold = hold
        self.keep_firing_for = keep_firing_for
        self.source: AlertSource = source
        self.active: dict[str, Alert] = {}

    def evaluate(self, now: float, results: Sequence[tuple[Mapping[str, str], float]],
                 annotate: Annotator | None = None) -> list[AlertEvent]:
        """Apply one evaluation at `now`: `results` are the label sets (with the rule's labels and
        `alertname`) and values for which the condition holds. Returns the state changes."""
        before = {fp: a.state for fp, a in self.active.items()}
        seen: set[str] = set()
        for labels, value in results:
            labels = {**labels, "alertname": labels.get("alertname", self.name)}
            fp = fingerprint(labels)
            seen.add(fp)
            notes = annotate(labels, value) if annotate else {}
            alert = self.active.get(fp)
            if alert is not None and alert.state is not AlertState.INACTIVE:
                alert.value, alert.annotations = value, notes
                continue
            self.active[fp] = Alert(labels=labels, value=value, active_at=now, annotations=notes)
            before.pop(fp, None)  # a resolved alert that comes back is a new alert

        events: list[AlertEvent] = []
        for fp, alert in list(self.active.items()):
            if fp not in seen:
                keep_firing = False
                if alert.state is AlertState.FIRING and self.keep_firing_for > 0:
                    if alert.keep_firing_since is None:
                        alert.keep_firing_since = now
                    keep_firing = now - alert.keep_firing_since < self.keep_firing_for
                if alert.state is AlertState.PENDING or (
                    alert.resolved_at is not None and now - alert.resolved_at > RESOLVED_RETENTION
                ):
                    del self.active[fp]
                if alert.state is not AlertState.INACTIVE and not keep_firing:
                    alert.state = AlertState.INACTIVE
                    alert.resolved_at = now
                    events.append(self._event(alert, now))
                if not keep_firing:
                    continue
            else:
                alert.keep_firing_since = None
            if alert.state is AlertState.PENDING and now - alert.active_at >= self.hold:
                alert.state = AlertState.FIRING
                alert.fired_at = now
            if before.get(fp) is not alert.state:
                events.append(self._event(alert, now))
        return events

    def _event(self, alert: Alert, now: float) -> AlertEvent:
        state = "resolved" if alert.state is AlertState.INACTIVE else alert.state.value
        return AlertEvent(
            fingerprint=alert.fingerprint,
            rule=self.name,
            state=state,
            severity=alert.labels.get("severity", "medium"),
            labels=alert.labels,
            annotations=alert.annotations,
            value=alert.value,
            starts_at=alert.active_at,
            ends_at=alert.resolved_at if state == "resolved" else None,
            event_time=now,
            source=self.source,
        )
