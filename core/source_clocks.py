"""Event time and processing time per source, for the consumers of one samples partition: the window
engine (`core.windows`) and the rules step (`agents.rules_step`) keep their sources with this, so both
decide `future` samples, watermarks and idle sources the same way.

- A source is the message's Kafka key (the host or producer id; see `agents.window_step` for messages
  without one). Its event time is the newest time it sent that was accepted (`max_et`).
- Processing time comes in as an argument (`now`, the same for every sample of a message, e.g. when it
  was written to Kafka): a sample more than `max_future` ahead of its message's `now` is refused
  (`future`), so one wrong clock cannot move a watermark a year ahead.
- The processing clock (`proc_time`) only moves as far as a sender's own clock moved since its previous
  message (a source new here moves it not at all), never backwards: a writer whose clock is off by an
  hour moves it at the same rate as the others, and cannot make everyone else look idle.
- A source that sent nothing for `idle_timeout` of that clock is idle (`expire`) until it sends again.

Per-source values are plain lists indexed by source (one source per message: scalar access, cheaper
than numpy's); callers read them directly on their hot paths.
"""

from __future__ import annotations

import math
from typing import Any


class SourceClocks:
    """The sources of one partition: names, event time, activity and the processing clock."""

    def __init__(self, idle_timeout: float, max_future: float) -> None:
        self.idle_timeout = float(idle_timeout)
        self.max_future = float(max_future)
        self.proc_time = -math.inf
        self.idle_due = math.inf  # processing time at which some active source becomes idle, at the earliest
        self.names: list[str] = []
        self.ids: dict[str, int] = {}  # name -> index
        self.max_et: list[float] = []  # max event time accepted
        self.seen: list[float] = []  # processing clock at its last accepted sample
        self.sent_at: list[float] = []  # the `now` of its last message (its writer's clock)
        self.clock: list[float] = []  # the processing clock after its last message
        self.active: list[bool] = []  # sent since it was last found idle
        self.future: list[int] = []  # samples refused as `future`
        self.late: list[int] = []  # samples refused as `late` (the caller decides what is late)

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """The index of source `name`, added on first use."""
        i = self.ids.get(name)
        if i is None:
            i = self.ids[name] = len(self.names)
            self.names.append(name)
            self.max_et.append(-math.inf)
            self.seen.append(self.proc_time)
            self.sent_at.append(-math.inf)
            self.clock.append(-math.inf)
            self.active.append(False)
            self.future.append(0)
            self.late.append(0)
        return i

    def future_bound(self, now: float | None) -> float:
        """Samples of a message written at `now` newer than this are `future` (None: no bound)."""
        return math.inf if now is None else now + self.max_future

    def message(self, source: int, now: float) -> None:
        """A message from `source` written at `now`: the processing clock moves by as much as `now` moved
        since the source's previous message (from where the clock was then), never backwards."""
        prev = self.sent_at[source]
        if self.proc_time == -math.inf:
            to = now
        elif prev == -math.inf:
            to = self.proc_time
        else:
            to = self.clock[source] + (now - prev)
        self.sent_at[source] = now
        self.move(to)
        self.clock[source] = self.proc_time

    def move(self, now: float) -> None:
        """The processing clock to `now` if that is later."""
        if now > self.proc_time:
            if self.proc_time == -math.inf:  # the first clock: sources seen before any clock start here
                self.seen[:] = [now if t == -math.inf else t for t in self.seen]
            self.proc_time = now

    def accepted(self, source: int, max_ts: float) -> bool:
        """`source` had samples accepted, the newest at `max_ts`; whether its event time moved."""
        moved = max_ts > self.max_et[source]
        if moved:
            self.max_et[source] = max_ts
        self.seen[source] = self.proc_time
        if not self.active[source]:
            self.active[source] = True
            self.idle_due = min(self.idle_due, self.proc_time + self.idle_timeout)
        return moved

    def expire(self) -> list[int]:
        """The active sources idle for `idle_timeout` at the processing clock, now marked idle; `idle_due`
        becomes the time the next one would be."""
        t = self.proc_time
        idle, due = [], math.inf
        for i, active in enumerate(self.active):
            if active:
                if self.seen[i] + self.idle_timeout <= t:
                    idle.append(i)
                    self.active[i] = False
                else:
                    due = min(due, self.seen[i] + self.idle_timeout)
        self.idle_due = due
        return idle

    def quiet_time(self) -> float | None:
        """The processing time at which every active source is idle (None: none is active)."""
        seen = [t for t, a in zip(self.seen, self.active, strict=True) if a]
        return max(max(seen) + self.idle_timeout, self.proc_time) if seen else None

    def state(self) -> list[list[Any]]:
        """Per source: [name, max_et, seen, active, future, late, sent_at, clock] (non-finite as null)."""
        return [[name, _finite(self.max_et[i]), _finite(self.seen[i]), self.active[i], self.future[i],
                 self.late[i], _finite(self.sent_at[i]), _finite(self.clock[i])]
                for i, name in enumerate(self.names)]

    def load(self, rows: list[list[Any]], proc_time: float | None) -> None:
        """Sources from `state()` rows (added to, or overwriting, those known), and the processing clock."""
        self.proc_time = _or(proc_time, -math.inf)
        for name, mx, seen, active, future, late, sent_at, clock in rows:
            i = self.index(name)
            self.max_et[i], self.seen[i], self.active[i] = _or(mx, -math.inf), _or(seen, -math.inf), bool(active)
            self.future[i], self.late[i] = int(future), int(late)
            self.sent_at[i], self.clock[i] = _or(sent_at, -math.inf), _or(clock, -math.inf)

    def copy(self) -> SourceClocks:
        other = SourceClocks(self.idle_timeout, self.max_future)
        other.load(self.state(), _finite(self.proc_time))
        other.idle_due = self.idle_due
        return other


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _or(x: float | None, default: float) -> float:
    return default if x is None else float(x)
