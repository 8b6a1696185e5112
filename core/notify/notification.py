"""What one integration of one receiver is sent for one aggregation group: the alerts with their states,
plus Alertmanager's webhook payload, which the webhook integration sends as is and other integrations
derive from."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from watchkeeper.schemas.alerts import AlertEvent

ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339(ts: float | None) -> str:
    if ts is None:
        return ZERO_TIME
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def labels_str(labels: dict[str, str]) -> str:
    """Prometheus' label set string, as Alertmanager prints group labels in group keys."""
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    out = dict(maps[0])
    for m in maps[1:]:
        out = {k: v for k, v in out.items() if m.get(k) == v}
    return out


@dataclass
class Notification:
    receiver: str
    integration: str
    group_key: str
    group_labels: dict[str, str]
    alerts: list[AlertEvent]
    flush_time: float
    external_url: str = ""
    truncated_alerts: int = 0
    firing_fps: list[str] = field(default_factory=list)
    resolved_fps: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "firing" if any(a.state == "firing" for a in self.alerts) else "resolved"

    @property
    def notification_id(self) -> str:
        """Stable for the same receiver integration, group, alert states and flush: the outbox key."""
        states = ",".join(f"{a.fingerprint}:{a.state}" for a in sorted(self.alerts, key=lambda a: a.fingerprint))
        raw = f"{self.receiver}\x00{self.integration}\x00{self.group_key}\x00{states}\x00{self.flush_time:.3f}"
        return hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()

    @property
    def common_labels(self) -> dict[str, str]:
        return _common([a.labels for a in self.alerts])

    @property
    def common_annotations(self) -> dict[str, str]:
        return _common([a.annotations for a in self.alerts])

    def firing(self) -> list[AlertEvent]:
        return [a for a in self.alerts if a.state == "firing"]

    def resolved(self) -> list[AlertEvent]:
        return [a for a in self.alerts if a.state == "resolved"]

    def template_data(self) -> dict[str, Any]:
        return {"Status": self.status, "Receiver": self.receiver, "ExternalURL": self.external_url,
                "GroupKey": self.group_key, "GroupLabels": self.group_labels, "CommonLabels": self.common_labels,
                "CommonAnnotations": self.common_annotations, "Alerts": self.alerts}

    def webhook_payload(self, max_alerts: int = 0) -> dict[str, Any]:
        """Alertmanager's webhook message, version 4 (notify/webhook)."""
        alerts = self.alerts[:max_alerts] if max_alerts else self.alerts
        return {
            "receiver": self.receiver,
            "status": self.status,
            "alerts": [alert_json(a) for a in alerts],
            "groupLabels": self.group_labels,
            "commonLabels": self.common_labels,
            "commonAnnotations": self.common_annotations,
            "externalURL": self.external_url,
            "version": "4",
            "groupKey": self.group_key,
            "truncatedAlerts": len(self.alerts) - len(alerts) + self.truncated_alerts,
        }

    def to_json(self) -> dict[str, Any]:
        return {"receiver": self.receiver, "integration": self.integration, "group_key": self.group_key,
                "group_labels": self.group_labels, "alerts": [a.model_dump(mode="json") for a in self.alerts],
                "flush_time": self.flush_time, "external_url": self.external_url,
                "firing_fps": self.firing_fps, "resolved_fps": self.resolved_fps}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Notification:
        return cls(receiver=d["receiver"], integration=d["integration"], group_key=d["group_key"],
                   group_labels=d["group_labels"], alerts=[AlertEvent.model_validate(a) for a in d["alerts"]],
                   flush_time=d["flush_time"], external_url=d.get("external_url", ""),
                   firing_fps=d.get("firing_fps", []), resolved_fps=d.get("resolved_fps", []))


def alert_json(a: AlertEvent) -> dict[str, Any]:
    status = "resolved" if a.state == "resolved" else "firing"
    return {"status": status, "labels": a.labels, "annotations": a.annotations, "startsAt": rfc3339(a.starts_at),
            "endsAt": rfc3339(a.ends_at) if status == "resolved" else ZERO_TIME,
            "generatorURL": a.generator_url, "fingerprint": a.fingerprint}
