"""Alert state changes: the shape maps one-to-one onto Alertmanager's v2 alert."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

AlertState = Literal["pending", "firing", "resolved"]
AlertSource = Literal["rule", "anomaly", "slo", "probe"]


class AlertEvent(BaseModel):
    """One state change of one alert. `fingerprint` is a hash of rule name + labels (16 hex digits)."""

    model_config = ConfigDict(extra="forbid")

    v: Literal[1] = 1
    fingerprint: str
    rule: str
    state: AlertState
    severity: str = "medium"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    value: float = 0.0
    starts_at: float
    ends_at: float | None = None
    event_time: float
    source: AlertSource = "rule"
    generator_url: str = ""
