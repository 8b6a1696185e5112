"""Silences: matchers with a start, an end, an author and a comment. A silenced alert is recorded but
not sent. Alertmanager's states: pending (not started), active, expired."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from watchkeeper.core.notify.matchers import Matcher, matchers_str, parse_matchers


@dataclass
class Silence:
    id: str
    matchers: list[Matcher]
    starts_at: float
    ends_at: float
    created_by: str = ""
    comment: str = ""

    def state(self, now: float) -> str:
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def mutes(self, labels: Mapping[str, str], now: float) -> bool:
        return self.state(now) == "active" and all(m.matches(labels) for m in self.matchers)

    @property
    def matchers_text(self) -> str:
        return matchers_str(self.matchers)

    @classmethod
    def of(cls, id: str, matchers: str, starts_at: float, ends_at: float, created_by: str = "",
           comment: str = "") -> Silence:
        return cls(id, parse_matchers(matchers), starts_at, ends_at, created_by, comment)


def silenced_by(silences: list[Silence], labels: Mapping[str, str], now: float) -> list[str]:
    return [s.id for s in silences if s.mutes(labels, now)]
