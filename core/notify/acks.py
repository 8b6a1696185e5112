"""Acknowledgements: "I'm on it, stop paging me until it resolves" (prometheus#6628, grafana#13364).

An ack names alerts by fingerprint or by matchers, and covers a firing alert whose current firing began
before the ack was made: its repeat notifications stop (and its escalation holds) until it resolves or
the ack expires. A later firing of the same alert starts after the ack, so it is not covered and notifies
again; no one has to remember to delete the ack. Unlike a silence, an ack never hides an alert that
starts after it. Pure: the caller passes `now`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from watchkeeper.core.notify.matchers import Matcher, MatcherError, matchers_str, parse_matchers
from watchkeeper.core.notify.notification import rfc3339
from watchkeeper.schemas.alerts import AlertEvent


class AckError(ValueError):
    """An acknowledgement that cannot be made; the message says what to give instead."""


@dataclass(frozen=True)
class Ack:
    id: str
    created_at: float
    by: str
    comment: str
    fingerprint: str = ""  # either a fingerprint ...
    matchers: tuple[Matcher, ...] = field(default=())  # ... or matchers
    expires_at: float = math.inf

    def __post_init__(self) -> None:
        if bool(self.fingerprint) == bool(self.matchers):
            raise AckError("an acknowledgement needs either a fingerprint or matchers (not both)")
        if not self.comment.strip():
            raise AckError("an acknowledgement needs a comment (what is being done about it)")
        if self.expires_at <= self.created_at:
            raise AckError("the acknowledgement expires before it is made")

    @classmethod
    def of(cls, id: str, created_at: float, by: str, comment: str, *, fingerprint: str = "", matchers: str = "",
           expires_at: float = math.inf) -> Ack:
        try:
            parsed = tuple(parse_matchers(matchers)) if matchers.strip() else ()
        except MatcherError as exc:
            raise AckError(str(exc)) from None
        return cls(id, created_at, by, comment, fingerprint.strip(), parsed, expires_at)

    @property
    def target(self) -> str:
        """What the ack names, as the CLI and the dashboard print it."""
        return self.fingerprint or matchers_str(self.matchers)

    def state(self, now: float) -> str:
        return "active" if now < self.expires_at else "expired"

    def names(self, fingerprint: str, labels: Mapping[str, str]) -> bool:
        if self.fingerprint:
            return fingerprint == self.fingerprint
        return all(m.matches(labels) for m in self.matchers)

    def covers(self, alert: AlertEvent, now: float) -> bool:
        """True if this ack stops `alert`'s repeats now: it is firing, named by the ack, its firing began
        before the ack, and the ack has not expired."""
        return (alert.state == "firing" and self.created_at <= now < self.expires_at
                and alert.starts_at <= self.created_at
                and self.names(alert.fingerprint, alert.labels))


def acked_by(acks: Iterable[Ack], alert: AlertEvent, now: float) -> Ack | None:
    """The earliest ack covering `alert` now, or None."""
    found = [a for a in acks if a.covers(alert, now)]
    return min(found, key=lambda a: (a.created_at, a.id)) if found else None


def ack_note(ack: Ack) -> str:
    """The text of an ack's `notifications` record: who, what, and why (the record's time says when)."""
    until = "" if math.isinf(ack.expires_at) else f", expires {rfc3339(ack.expires_at)}"
    return f"acknowledged by {ack.by or 'unknown'} ({ack.id[:12]}, {ack.target}{until}): {ack.comment}"
