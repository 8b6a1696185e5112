"""A rule engine's evaluation failures, bounded and readable, as vmalert keeps them (`rule.go`, `ruleState`).

A failed evaluation leaves the rule's state untouched for that tick (Prometheus does the same); what the
operator needs is to *see* it: a running count per group (for `/metrics`), the last few failures of each rule
(for the dashboard), and the ones the wiring has not yet logged. All three are bounded, so a rule that fails
at every tick for a month costs the same memory as one that failed once.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

# Failures kept per rule for display: vmalert's default `-rule.updateEntriesLimit` is 20 evaluations of any
# outcome; failures alone are rarer and each carries a message, so fewer are enough to tell a pattern.
KEEP_PER_RULE = 5
# Failures not yet taken by the wiring; beyond this the oldest go (still counted) so memory stays bounded
# even when nothing takes them (a replay, a test).
PENDING_LIMIT = 1000


@dataclass(frozen=True)
class EvalFailure:
    group: str
    rule: str
    t: float  # the tick's event time
    message: str

    def __str__(self) -> str:
        return f"t={self.t:g} group {self.group!r} rule {self.rule!r}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"group": self.group, "rule": self.rule, "t": self.t, "message": self.message}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EvalFailure:
        return cls(str(d["group"]), str(d["rule"]), float(d["t"]), str(d["message"]))


class EvalFailures:
    """Counts per group, the last `keep` failures per (group, rule), and a bounded queue of untaken ones."""

    def __init__(self, keep: int = KEEP_PER_RULE, pending_limit: int = PENDING_LIMIT) -> None:
        self.keep = keep
        self.counts: dict[str, int] = {}
        self.recent: dict[tuple[str, str], deque[EvalFailure]] = {}
        self._pending: deque[EvalFailure] = deque(maxlen=pending_limit)

    def add(self, failure: EvalFailure) -> None:
        self.counts[failure.group] = self.counts.get(failure.group, 0) + 1
        key = (failure.group, failure.rule)
        ring = self.recent.get(key)
        if ring is None:
            ring = self.recent[key] = deque(maxlen=self.keep)
        ring.append(failure)
        self._pending.append(failure)

    def take(self) -> list[EvalFailure]:
        """The failures added since the last call, oldest first (at most `pending_limit` of them)."""
        out = list(self._pending)
        self._pending.clear()
        return out

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def last(self) -> list[EvalFailure]:
        """Every kept failure, oldest tick first."""
        return sorted((f for ring in self.recent.values() for f in ring), key=lambda f: f.t)

    def to_json(self) -> dict[str, Any]:
        """What the dashboard shows: counts per group and the kept failures of each rule."""
        return {"counts": dict(self.counts), "recent": [f.to_json() for f in self.last()]}

    @classmethod
    def from_json(cls, d: dict[str, Any], keep: int = KEEP_PER_RULE) -> EvalFailures:
        out = cls(keep)
        for f in d.get("recent", []):
            out.add(EvalFailure.from_json(f))
        out.counts = {str(g): int(n) for g, n in d.get("counts", {}).items()}
        out._pending.clear()
        return out

    def merge(self, other: EvalFailures) -> None:
        """Fold another process's failures in (the dashboard reads one file per worker process)."""
        for group, n in other.counts.items():
            self.counts[group] = self.counts.get(group, 0) + n
        for key, ring in other.recent.items():
            both = sorted([*self.recent.get(key, ()), *ring], key=lambda f: f.t)
            self.recent[key] = deque(both[-self.keep:], maxlen=self.keep)
