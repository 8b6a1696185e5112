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
    status: Literal["sent", "failed", "retrying", "silenced", "inhibited", "deduplicated",
                    # acknowledgement, escalation and verified remediation (core/notify/acks.py, escalation.py)
                    "acknowledged", "ack_suppressed", "escalated", "remediated", "remediation_failed",
                    "remediation_skipped"]
    attempt: int = 1
    error: str = ""
    latency_ms: float = 0.0
    time: float
    alerts: list[str] = Field(default_factory=list)  # fingerprints
    firing: int = 0
    resolved: int = 0
