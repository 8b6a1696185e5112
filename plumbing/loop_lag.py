"""How long the event loop is blocked, and by what: a worker's heartbeats to Kafka, Faust's timers and every
other agent wait while one coroutine computes without suspending, so a block longer than the consumer
session costs a rebalance (bench/rules/RESULTS.md, section 3b: 10-34 s blocks while catching up a backlog).

- `LoopLagMonitor.watch` wakes every `interval` seconds and measures how late it woke (the loop-lag
  gauge of Node.js and Faust's "Timer ... woke up too late", as a histogram); a wake at least `warn` late
  is logged at WARNING with where the loop was blocked.
- Where: a daemon thread (`BlockSampler`) looks at the loop's heartbeat every `every` seconds and, while it
  is older than `after`, samples the loop thread's Python stack (`sys._current_frames`); the logged line
  names the most frequent stacks of the block. It costs nothing while the loop keeps its beat.

The clock and the sleep are arguments, so the monitor's arithmetic is tested with a fake timeline.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from types import FrameType

log = logging.getLogger("watchkeeper.loop")

OUR_PACKAGE = "watchkeeper."
FRAMES_SHOWN = 4  # outermost frames of our own code that name where a block was


def where(frame: FrameType | None, ours: str = OUR_PACKAGE, depth: int = FRAMES_SHOWN) -> tuple[str, str]:
    """A stack as (entry, inner): `entry` the outermost `depth` frames of modules under `ours` that the
    event loop called (the frames below asyncio's: which task, agent, runtime or step was running; blocks
    are counted by it), outermost first; `inner` the innermost frame whatever its module (numpy, orjson,
    the evaluator ...)."""
    inner = ""
    own: list[str] = []
    while frame is not None:
        module = str(frame.f_globals.get("__name__", "?"))
        if module.startswith("asyncio.") and own:
            break  # the loop running the task: what is above it (the command that started the loop) says nothing
        name = f"{module}:{frame.f_code.co_qualname}:{frame.f_lineno}"
        inner = inner or name
        if module.startswith(ours):
            own.append(name)
        frame = frame.f_back
    return " > ".join(reversed(own[-depth:])) or "?", inner or "?"


class BlockSampler(threading.Thread):
    """Samples the loop thread's stack while the loop's heartbeat is older than `after` seconds."""

    def __init__(self, thread_id: int, beat: Callable[[], float], after: float, every: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name="watchkeeper-loop-sampler", daemon=True)
        self.thread_id, self.beat, self.after, self.every, self.clock = thread_id, beat, after, every, clock
        self.samples: list[tuple[str, str]] = []  # appended by this thread, taken by the loop (list ops hold the GIL)
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.every):
            if self.clock() - self.beat() >= self.after:
                self.samples.append(where(sys._current_frames().get(self.thread_id)))

    def take(self) -> list[tuple[str, str]]:
        taken, self.samples = self.samples, []
        return taken

    def stop(self) -> None:
        self._done.set()


def summarize(samples: list[tuple[str, str]], shown: int = 2) -> str:
    """The entries (see `where`) most often running during a block, with their share of its samples and
    the innermost frame seen most often under each."""
    if not samples:
        return "no stack sampled"
    entries = Counter(entry for entry, _ in samples).most_common(shown)
    parts = []
    for entry, n in entries:
        inner = Counter(i for e, i in samples if e == entry).most_common(1)[0][0]
        parts.append(f"{n} of {len(samples)} samples in {entry} (innermost most often: {inner})")
    return "; ".join(parts)


class LoopLagMonitor:
    """The loop-lag watch (see the module docstring). `observe(late)` gets every wake's lateness (a metric);
    blocks of at least `warn` seconds are logged, and kept in `blocks` (lateness, where) for a caller that
    reports them."""

    def __init__(self, interval: float = 0.1, warn: float = 1.0, *, sample_after: float = 0.25,
                 sample_every: float = 0.1, sample_stacks: bool = True,
                 observe: Callable[[float], None] = lambda late: None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        self.interval, self.warn, self.observe = interval, warn, observe
        self.sample_after, self.sample_every, self.sample_stacks = sample_after, sample_every, sample_stacks
        self.clock, self.wall, self.sleep = clock, wall, sleep
        self.beat = clock()
        self.wakes = 0
        self.max_late = 0.0
        self.blocks: list[tuple[float, str]] = []
        self.sampler: BlockSampler | None = None

    def start_sampler(self) -> None:
        """Sample stacks of blocks of the loop running in this thread (call from the loop's thread)."""
        self.sampler = BlockSampler(threading.get_ident(), lambda: self.beat, self.sample_after,
                                    self.sample_every, self.clock)
        self.sampler.start()

    def woke(self, late: float) -> None:
        """One wake, `late` seconds after it was due."""
        self.wakes += 1
        self.max_late = max(self.max_late, late)
        self.observe(max(0.0, late))
        samples = self.sampler.take() if self.sampler is not None else []
        if late >= self.warn:
            place = summarize(samples)
            self.blocks.append((late, place))
            log.warning("event loop blocked %.2f s (a %.1f s timer woke that late; wall %.3f): %s", late,
                        self.interval, self.wall(), place)

    async def watch(self) -> None:
        """Runs until cancelled."""
        if self.sampler is None and self.sample_stacks:
            self.start_sampler()
        try:
            while True:
                due = self.clock() + self.interval
                await self.sleep(self.interval)
                now = self.beat = self.clock()
                self.woke(now - due)
        finally:
            if self.sampler is not None:
                self.sampler.stop()
