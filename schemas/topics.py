"""Default topic names and partition counts (DESIGN.md); names are configurable, partitions explicit."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int


DEFAULT_TOPICS: dict[str, TopicSpec] = {
    "samples": TopicSpec("wk.samples", 8),
    "aggregates": TopicSpec("wk.aggregates", 8),
    "alerts": TopicSpec("wk.alerts", 8),
    "notifications": TopicSpec("wk.notifications", 8),
    "deadletter": TopicSpec("wk.deadletter", 1),
}
