"""The delivery log: one record per notification attempt."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class NotificationRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    v: Literal[1] = 1
    notification_id: str
    receiver: str
    integration: str
    group_key: str
    # "held": deliberately not sent (an SMS rate limit), the reason in `error`; "muted": inside a time interval
    # that mutes the route; acknowledgement, escalation and verified remediation (core/notify/acks.py,
    # escalation.py). All new in v1: readers that take status as a string (the ClickHouse table) need no change.
    status: Literal["sent", "failed", "retrying", "silenced", "inhibited", "muted", "deduplicated", "held",
                    "acknowledged", "ack_suppressed", "escalated", "remediated", "remediation_failed",
                    "remediation_skipped"]
    attempt: int = 1
    error: str = ""
    latency_ms: float = 0.0
    time: float
    alerts: list[str] = Field(default_factory=list)  # fingerprints
    firing: int = 0
    resolved: int = 0
