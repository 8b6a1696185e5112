"""A partition's lifecycle in one worker, as an enum and one transition method (as `core.alert_state`
does for alerts). Every other module asks this one what a partition is, instead of inferring it from
which set or dict it sits in.

             assign               resume               resumed
    IDLE ───────────▶ ASSIGNED ───────────▶ RESUMING ───────────▶ LIVE
      ▲                  ▲ ▲                   │                    │
      │                  │ └────── failed ─────┘                    │
      │                  └───────────── failed (the feed) ──────────┤
      │   released                                                  │ revoke (also from ASSIGNED, RESUMING)
      └────────────── RELEASING ◀───────────────────────────────────┘
                      no new work; the work under way ends; its sends durable; its state forgotten

RELEASING is the revocation race's answer: a partition there takes no new work, and `release()` returns
only once the work under way on it ended (`work()` counts it), so the next owner, which reads the
checkpoint and the last output only once every member's revocation returned (Kafka's eager rebalance;
a stopping worker leaves the group after it), reads final ones. A resume remembers the generation it
started in: a partition revoked (and maybe assigned again) while its checkpoint was being read is not
taken by that stale resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Iterable, Iterator


class Phase(enum.Enum):
    IDLE = "idle"  # not ours
    ASSIGNED = "assigned"  # ours, not yet resumed
    RESUMING = "resuming"  # checkpoint being read, then the input after it replayed
    LIVE = "live"  # resumed: fed live input
    RELEASING = "releasing"  # revoked: no new work; the work under way ends, its output made durable


class Event(enum.Enum):
    ASSIGN = "assign"
    RESUME = "resume"
    RESUMED = "resumed"
    FAILED = "failed"
    REVOKE = "revoke"
    RELEASED = "released"


class LifecycleError(RuntimeError):
    """A transition the lifecycle does not have: a bug in the caller, never a data problem."""


_NEXT: dict[tuple[Phase, Event], Phase] = {
    (Phase.IDLE, Event.ASSIGN): Phase.ASSIGNED,
    # The assignment is read again on every trigger: a partition already on its way keeps its phase (one
    # being released is assigned afresh once the release ended, by the next trigger).
    (Phase.ASSIGNED, Event.ASSIGN): Phase.ASSIGNED,
    (Phase.RESUMING, Event.ASSIGN): Phase.RESUMING,
    (Phase.LIVE, Event.ASSIGN): Phase.LIVE,
    (Phase.RELEASING, Event.ASSIGN): Phase.RELEASING,
    (Phase.ASSIGNED, Event.RESUME): Phase.RESUMING,
    (Phase.RESUMING, Event.RESUMED): Phase.LIVE,
    (Phase.RESUMING, Event.FAILED): Phase.ASSIGNED,
    (Phase.LIVE, Event.FAILED): Phase.ASSIGNED,
    (Phase.IDLE, Event.REVOKE): Phase.IDLE,
    (Phase.ASSIGNED, Event.REVOKE): Phase.RELEASING,
    (Phase.RESUMING, Event.REVOKE): Phase.RELEASING,
    (Phase.LIVE, Event.REVOKE): Phase.RELEASING,
    (Phase.RELEASING, Event.REVOKE): Phase.RELEASING,
    (Phase.RELEASING, Event.RELEASED): Phase.IDLE,
}
# Work may go on in these: a resume's replay emits as the live run did.
ACTIVE = frozenset({Phase.RESUMING, Phase.LIVE})


class Ownership:
    """The phase of each partition of one input topic in this worker, and the work under way on each."""

    def __init__(self) -> None:
        self._phase: dict[int, Phase] = {}
        self._generation: dict[int, int] = {}  # bumped on every revocation
        self._busy: dict[int, int] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self.stopping = False

    def phase(self, p: int) -> Phase:
        return self._phase.get(p, Phase.IDLE)

    def generation(self, p: int) -> int:
        return self._generation.get(p, 0)

    def transition(self, p: int, event: Event) -> Phase:
        """Move partition p by `event`; every change of phase goes through here."""
        now = self.phase(p)
        if event is Event.ASSIGN and self.stopping:
            return now  # a stopping worker takes nothing new
        after = _NEXT.get((now, event))
        if after is None:
            raise LifecycleError(f"partition {p}: no transition from {now.value} on {event.value}")
        if event is Event.REVOKE and now is not Phase.IDLE:
            self._generation[p] = self.generation(p) + 1
        if after is Phase.IDLE:
            self._phase.pop(p, None)
        else:
            self._phase[p] = after
        return after

    def active(self, p: int) -> bool:
        """Whether work on p may start or go on (checked after every await of that work)."""
        return self.phase(p) in ACTIVE

    def in_phase(self, *phases: Phase) -> list[int]:
        return sorted(p for p, ph in self._phase.items() if ph in phases)

    def stale(self, p: int, generation: int) -> bool:
        """Whether p was revoked since `generation` was read (a resume started then must not take it)."""
        return self.generation(p) != generation or self.phase(p) is not Phase.RESUMING

    @contextlib.contextmanager
    def work(self, parts: Iterable[int]) -> Iterator[None]:
        """Mark an operation on `parts` under way: `quiesce` waits for it to end."""
        parts = list(parts)
        for p in parts:
            self._busy[p] = self._busy.get(p, 0) + 1
        self._idle.clear()
        try:
            yield
        finally:
            for p in parts:
                self._busy[p] -= 1
                if not self._busy[p]:
                    del self._busy[p]
            self._idle.set()

    def busy(self, p: int) -> bool:
        return bool(self._busy.get(p))

    async def quiesce(self, parts: Iterable[int]) -> None:
        """Until no work on `parts` is under way (woken at the end of every piece of work, no polling)."""
        parts = list(parts)
        while any(self.busy(p) for p in parts):
            self._idle.clear()
            await self._idle.wait()
