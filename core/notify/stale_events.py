"""Whether an alert event is older than what the notification sink has already applied for its fingerprint.

A replay (restart, consumer-group rebalance, a producer with a wrong clock re-sending) can deliver the
firing and resolved events of one alert out of order or in different batches. Without this check an old
firing that arrives after the resolution was sent re-creates the group and notifies "firing" again.
Alertmanager avoids it in its alert store (`types.Alert.Merge` keeps the newer version by update time);
here the newest applied transition per fingerprint is remembered and anything not newer is skipped.

Equal event times: the same transition twice is a duplicate; a firing and a resolved with the same event
time are ordered resolved-after-firing (a resolution ends the firing it belongs to), so the outcome is the
same whatever order they arrive in. Skipped events are duplicates, not bad input: they are counted and
logged, never dead-lettered. Pure: no clock, no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from watchkeeper.schemas.alerts import AlertState

StaleReason = Literal["older", "duplicate"]

_RANK: dict[str, int] = {"pending": 0, "firing": 1, "resolved": 2}


@dataclass(frozen=True)
class Applied:
    """The newest transition applied for one fingerprint: its event time and state."""

    event_time: float
    state: AlertState


def order_key(event_time: float, state: AlertState) -> tuple[float, int]:
    """Total order of transitions of one fingerprint: event time, then state (resolved last at a tie)."""
    return (event_time, _RANK[state])


def stale_reason(last: Applied | None, event_time: float, state: AlertState) -> StaleReason | None:
    """None when the event is newer than `last` and must be applied; otherwise why it is skipped."""
    if last is None:
        return None
    new, old = order_key(event_time, state), order_key(last.event_time, last.state)
    if new > old:
        return None
    return "duplicate" if new == old else "older"
