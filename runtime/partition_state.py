"""State owned per input partition, checkpointed, output exactly once: the runtime a stateful agent wires
its step into.

- **Lifecycle** (`runtime.ownership`): a partition is assigned, resumed (newest checkpoint read, the input
  after it replayed), fed live input, and released; every change goes through `Ownership.transition`.
- **Checkpoint**: the step's state of partition p (framed by `core.checkpoint_frame`, holding the last input
  offset applied and the last output sequence number) written to the checkpoint log's partition p, every
  `every_messages` messages or `every_seconds`, and only once the output it covers is durable. Resuming
  never trusts a consumer group's committed offset: it replays from the checkpoint up to the input's end.
- **Output**: exactly once by sequence numbers (`runtime.exactly_once`).
- **Data path**: the runtime's own consumer (the feed, no group) reads the live partitions, each
  positioned at its state's next offset; each partition's share of a fetch (or a replay's chunk) goes
  through the step in pieces of at most `batch_messages` messages and `batch_bytes` bytes of values, and
  the event loop gets a turn after each piece: a fetch answered from the consumer's buffer never suspends,
  so without the cut one call could hold the loop for seconds and the worker miss its heartbeats (steps
  are deterministic whatever the cut, which the replay already relies on). A failed fetch (the broker
  away) resumes the live partitions from their checkpoints.
- **Revocation**: `release()` stops new work on the partitions, waits for the work under way, makes
  every send of theirs durable and forgets their state, in that order, before it returns (the race this
  closes is tested in tests/unit/test_partition_runtime.py).

Everything that touches the broker is behind `PartitionIO` and the feed consumer (an `AIOKafkaConsumer`
in the worker, a fake in the unit tests); both clocks are arguments.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka.structs import TopicPartition

from watchkeeper.runtime.exactly_once import Headers, already_sent, headers_of, seq_of, unsnapshotted_tick
from watchkeeper.runtime.ownership import Event, Ownership, Phase

log = logging.getLogger("watchkeeper.runtime")

Record = tuple[int, bytes | None, bytes, float]  # offset, key, value, processing time (record timestamp)
OutRecord = tuple[bytes, bytes, list[tuple[str, bytes]]]  # key, value, headers


@dataclass
class StepOutput:
    """What a step made of a batch of one partition's input."""

    records: list[tuple[bytes, bytes]] = field(default_factory=list)  # (key, value) for output partition p
    # The step's own headers of each record, beside the runtime's (empty: none; e.g. the rules' partial
    # stage says its watermark, `wk-wm`)
    headers: list[list[tuple[str, bytes]]] = field(default_factory=list)
    deadletters: list[tuple[bytes | None, bytes]] = field(default_factory=list)  # (original key, DeadLetter)
    first_seq: int = 0  # output sequence number of records[0] within its partition
    rejected: Counter[str] = field(default_factory=Counter)  # input items refused, by reason
    dead: Counter[str] = field(default_factory=Counter)  # dead letters, by reason
    tick_after: int | None = None  # made by `tick()`: the last input offset before it
    applied: int = 0  # input items applied (samples windowed, points scored)


@dataclass
class PartitionProgress:
    """What a partition's checkpoint says besides the step's state: the last input offset applied and the
    sequence number of the last output record made."""

    offset: int = -1
    seq: int = 0


class PartitionStep(Protocol):
    """The pure part an agent brings: deterministic per partition, no I/O, never raises on bad input."""

    progress: dict[int, PartitionProgress]

    def restore(self, partition: int, data: bytes | None) -> None: ...
    def snapshot(self, partition: int) -> bytes: ...
    def forget(self, partition: int) -> None: ...
    def process_records(self, partition: int, records: Sequence[Record], now: float) -> StepOutput: ...
    def tick(self, partition: int) -> StepOutput: ...


class PartitionIO(Protocol):
    """The broker, as the runtime needs it (Kafka through Faust's producer and table in the worker)."""

    async def newest_checkpoints(self, parts: list[int]) -> dict[int, bytes | None]: ...
    def write_checkpoint(self, partition: int, data: bytes) -> None: ...
    async def flush(self) -> None: ...
    async def last_output(self, parts: list[int]) -> dict[int, Headers | None]: ...
    async def send(self, partition: int, records: list[OutRecord]) -> list[asyncio.Future[Any]]: ...
    async def dead_letter(self, key: bytes | None, value: bytes) -> None: ...
    def replay(self, partition: int, start: int, stop: int | None, chunk: int) -> AsyncIterator[list[Any]]: ...


class FeedConsumer(Protocol):
    """The part of `AIOKafkaConsumer` the feed uses (a fake in the unit tests)."""

    def assign(self, partitions: list[TopicPartition]) -> None: ...
    def seek(self, partition: TopicPartition, offset: int) -> None: ...
    def highwater(self, partition: TopicPartition) -> int | None: ...
    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[Any]]: ...
    async def stop(self) -> None: ...


@dataclass(frozen=True)
class RuntimeSettings:
    every_messages: int = 10_000  # checkpoint after this many messages of a partition ...
    every_seconds: float = 5.0  # ... or this long after its last checkpoint
    batch_messages: int = 1000  # at most this many messages of a partition per step ...
    # ... and at most this many bytes of their values (one message more if the first is larger): a step call
    # runs without suspending, so this bounds how long it blocks the event loop (heartbeats, other agents)
    batch_bytes: int = 1_000_000
    idle_timeout: float | None = None  # a partition without input this long gets a `tick` (None: never)
    flush_checkpoint_alone: bool = True  # the ListOffsets defect's workaround (runtime.broker_defects)


class PartitionRuntime:
    """One input topic's partitions in one worker: their lifecycle, checkpoints, output and feed."""

    TICK_EVERY_SECONDS = 1.0  # how often partitions without input are checked for `idle_timeout`

    def __init__(self, topic: str, step: PartitionStep, io: PartitionIO, settings: RuntimeSettings,
                 observe: Callable[[int, StepOutput], None] = lambda p, out: None,
                 monotonic: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 label: str | None = None) -> None:
        self.topic, self.step, self.io, self.settings = topic, step, io, settings
        self.label = label or topic  # in logs: which agent's runtime (several read one topic)
        self.observe = observe  # called right after each step, before any await (metrics)
        self.monotonic, self.wall = monotonic, wall
        self.own = Ownership()
        self.feed: FeedConsumer | None = None
        self.last_sent: dict[int, int] = {}  # partition -> last sequence number on the output
        self._sent: dict[int, list[asyncio.Future[Any]]] = {}
        self._since_checkpoint: dict[int, int] = {}
        self._last_checkpoint: dict[int, float] = {}
        self._last_input: dict[int, float] = {}
        self._last_tick = 0.0
        # How partitions are resumed again after the feed failed: the agent wraps `resume` (Faust's pausing).
        self.resumer: Callable[[list[int]], Awaitable[Any]] = self.resume

    # -- lifecycle -----------------------------------------------------------------------------------

    def assign(self, parts: Iterable[int]) -> list[int]:
        """Partitions now ours that still need a resume."""
        for p in parts:
            self.own.transition(p, Event.ASSIGN)
        return self.own.in_phase(Phase.ASSIGNED)

    async def resume(self, parts: list[int]) -> list[int]:
        """Resume assigned partitions from their newest checkpoints, replay what follows each up to the
        input's end, and make them live (the reads for all of them at once: each costs a round of broker
        requests). A partition revoked meanwhile is not taken; on failure the others are left ASSIGNED for
        the next try and the error is raised. Returns the partitions made live."""
        parts = [p for p in parts if self.own.phase(p) is Phase.ASSIGNED]
        if not parts:
            return []
        generation = {p: self.own.generation(p) for p in parts}
        for p in parts:
            self.own.transition(p, Event.RESUME)
        with self.own.work(parts):
            try:
                checkpoints, lasts = await asyncio.gather(self.io.newest_checkpoints(parts),
                                                          self.io.last_output(parts))
                mine = [p for p in parts if not self.own.stale(p, generation[p])]
                now = self.monotonic()
                for p in mine:
                    self.step.restore(p, checkpoints[p])
                    self.last_sent[p] = seq_of(lasts[p])
                    self._sent[p], self._since_checkpoint[p] = [], 0
                    self._last_checkpoint[p] = self._last_input[p] = now
                offsets = {p: self.step.progress[p].offset for p in mine}
                ticks = {p: unsnapshotted_tick(lasts[p], self.step.progress[p].seq) for p in mine}
                replayed = await asyncio.gather(*(self._catch_up(p, None, ticks[p]) for p in mine))
            except BaseException:
                for p in parts:
                    if self.own.phase(p) is Phase.RESUMING:
                        self._drop(p)
                        self.own.transition(p, Event.FAILED)
                raise
        live = []
        for p, n in zip(mine, replayed, strict=True):
            if self.own.phase(p) is Phase.RESUMING:
                self.own.transition(p, Event.RESUMED)
                live.append(p)
                log.info("%s %s[%d]: resumed from the snapshot at offset %d, replayed %d messages",
                         self.label, self.topic, p, offsets[p], n)
        self._refeed()
        return live

    async def release(self, parts: Iterable[int]) -> None:
        """Give partitions up so that the next owner neither resends nor misses an output record: no new
        work on them from here, the work under way ends (a batch sends all it made; a checkpoint whose
        output was not all sent is not written), every send of theirs is durable, then their state is
        forgotten. The next owner reads the checkpoint and the last output only after this returns."""
        parts = [p for p in set(parts) if self.own.phase(p) is not Phase.IDLE]
        for p in parts:
            self.own.transition(p, Event.REVOKE)
        self._refeed()
        await self.own.quiesce(parts)
        await asyncio.gather(*(f for p in parts for f in self._sent.get(p, [])), return_exceptions=True)
        await self.io.flush()
        for p in parts:
            self._drop(p)
            self.own.transition(p, Event.RELEASED)

    async def stop(self) -> None:
        """The worker stops: nothing new is taken, every partition is released."""
        self.own.stopping = True
        await self.release(self.own.in_phase(Phase.ASSIGNED, Phase.RESUMING, Phase.LIVE, Phase.RELEASING))

    def live(self) -> list[int]:
        return self.own.in_phase(Phase.LIVE)

    def _drop(self, p: int) -> None:
        self.last_sent.pop(p, None)
        self._sent.pop(p, None)
        self.step.forget(p)

    # -- the data path -------------------------------------------------------------------------------

    def _refeed(self) -> None:
        """Point the feed at the live partitions, each at its state's next offset."""
        if self.feed is None:
            return
        tps = [TopicPartition(self.topic, p) for p in self.live()]
        self.feed.assign(tps)
        for tp in tps:
            self.feed.seek(tp, self.step.progress[tp.partition].offset + 1)

    def highwater(self, p: int) -> int | None:
        if self.feed is None or self.own.phase(p) is not Phase.LIVE:
            return None
        return self.feed.highwater(TopicPartition(self.topic, p))

    def attach_feed(self, feed: FeedConsumer) -> None:
        self.feed = feed
        self._refeed()

    async def feed_once(self, timeout_ms: int = 100) -> None:
        """One fetch of the feed through the step, then the checkpoints and idle ticks that are due. A
        failure (e.g. the broker away) resumes the live partitions from their checkpoints: nothing lost,
        nothing doubled."""
        assert self.feed is not None
        parts = self.live()
        try:
            got = await self.feed.getmany(timeout_ms=timeout_ms, max_records=self.settings.batch_messages)
            for tp, records in got.items():
                if self.own.phase(tp.partition) is Phase.LIVE:
                    with self.own.work([tp.partition]):
                        await self.consume(tp.partition, [_record(r, self.wall) for r in records])
            await self._due({tp.partition for tp, records in got.items() if records})
        except Exception:
            log.exception("%s: the feed failed; resuming its partitions from their checkpoints", self.label)
            await asyncio.sleep(1.0)
            for p in parts:  # no await from here to resume(): nothing can interleave
                if self.own.phase(p) is Phase.LIVE:
                    self._drop(p)
                    self.own.transition(p, Event.FAILED)
            parts = self.own.in_phase(Phase.ASSIGNED)
            try:
                await self.resumer(parts)
            except Exception:  # left ASSIGNED: the agent's next trigger tries again
                log.exception("%s: resuming %s failed; waiting for the next assignment event", self.label, parts)

    async def _due(self, fed: set[int]) -> None:
        now = self.monotonic()
        for p in self.live():
            if self._since_checkpoint[p] and now - self._last_checkpoint[p] >= self.settings.every_seconds:
                with self.own.work([p]):
                    await self.checkpoint(p)
        if now - self._last_tick >= self.TICK_EVERY_SECONDS:
            self._last_tick = now
            for p in self.live():
                if p not in fed and self._caught_up(p):
                    with self.own.work([p]):
                        await self.quiet_tick(p)

    def _caught_up(self, p: int) -> bool:
        """Whether p's state holds everything fetched so far: a backlog is not quiet, whatever the wall
        clock says about its old records."""
        high = self.highwater(p)
        return high is not None and high <= self.step.progress[p].offset + 1

    async def consume(self, p: int, records: list[Record]) -> None:
        """Records of partition p (in offset order) not yet in the state, in runs of consecutive offsets; a
        gap (the reader skipped ahead of the state) is filled from the input log first."""
        run: list[Record] = []
        for rec in records:
            if not self.own.active(p) or rec[0] <= self.step.progress[p].offset:
                continue
            expected = (run[-1][0] if run else self.step.progress[p].offset) + 1
            if rec[0] > expected:
                if run:
                    await self._handle_pieces(p, run)
                    run = []
                await self._catch_up(p, rec[0])
                if not self.own.active(p):
                    return
            run.append(rec)
        if run and self.own.active(p):
            await self._handle_pieces(p, run)
        if self.own.active(p) and (self._since_checkpoint[p] >= self.settings.every_messages
                                   or self.monotonic() - self._last_checkpoint[p] >= self.settings.every_seconds):
            await self.checkpoint(p)

    async def _handle_pieces(self, p: int, records: list[Record]) -> None:
        """`records` through the step piece by piece (`pieces`), the event loop getting a turn after each;
        a partition revoked meanwhile takes no further piece (its next owner resumes from the checkpoint)."""
        for piece in pieces(records, self.settings.batch_messages, self.settings.batch_bytes):
            if not self.own.active(p):
                return
            await self._handle(p, piece)
            await asyncio.sleep(0)

    async def _handle(self, p: int, records: list[Record]) -> None:
        out = self.step.process_records(p, records, self.wall())
        self.observe(p, out)
        self._last_input[p] = self.monotonic()
        if out.records:
            await self._emit(p, out)
        for key, value in out.deadletters:
            await self.io.dead_letter(key, value)
        if p in self._since_checkpoint:
            self._since_checkpoint[p] += len(records)

    async def _emit(self, p: int, out: StepOutput) -> None:
        already = self.last_sent.get(p)
        if already is None or not self.own.active(p):  # revoked meanwhile: the next owner sends these
            return
        skip = already_sent(already, out.first_seq, len(out.records))
        if skip == len(out.records):
            return
        own = out.headers or [[] for _ in out.records]
        batch = [(key, value, headers_of(out.first_seq + i, out.tick_after) + own[i])
                 for i, (key, value) in enumerate(out.records) if i >= skip]
        pending = self._sent[p]
        pending.extend(await self.io.send(p, batch))
        if self.own.active(p):  # not revoked while sending (the revocation waits for these sends)
            self.last_sent[p] = out.first_seq + len(out.records) - 1

    async def _catch_up(self, p: int, stop: int | None, tick_after: int | None = None) -> int:
        """Replay partition p from the input log, from its state's next offset up to `stop` (None: the
        partition's end now). `tick_after`: a tick the live run made after that offset, missing from the
        checkpoint, is made again there (same input, same output, same sequence numbers)."""
        n = 0
        progress = self.step.progress
        if tick_after is not None and tick_after == progress[p].offset:
            await self.quiet_tick(p, force=True)
            tick_after = None
        async for recs in self.io.replay(p, progress[p].offset + 1, stop, self.settings.batch_messages):
            if not self.own.active(p):  # revoked while replaying: the next owner resumes from the checkpoint
                break
            records = [_record(rec, self.wall) for rec in recs]
            cut = len(records) if tick_after is None else sum(r[0] <= tick_after for r in records)
            if cut:
                await self._handle_pieces(p, records[:cut])
            if cut < len(records) and self.own.active(p):
                if tick_after is not None and progress[p].offset == tick_after:
                    await self.quiet_tick(p, force=True)
                    tick_after = None
                await self._handle_pieces(p, records[cut:])
            n += len(recs)
            if self._since_checkpoint.get(p, 0) >= self.settings.every_messages:
                await self.checkpoint(p)
        if tick_after is not None and p in progress and progress[p].offset == tick_after and self.own.active(p):
            await self.quiet_tick(p, force=True)
        return n

    async def quiet_tick(self, p: int, force: bool = False) -> None:
        """A tick of partition p if it had no input for `idle_timeout` (this worker's clock; `force`: now, a
        replay making one again); a tick is checkpointed before the partition's next input, so at most the
        last one is missing from a checkpoint, and its header says where a restart makes it again."""
        idle = self.settings.idle_timeout
        if not force and (idle is None or self.monotonic() - self._last_input.get(p, 0.0) < idle):
            return
        out = self.step.tick(p)
        if out.records and self.own.active(p):
            await self._emit(p, out)
            self._since_checkpoint[p] += 1
            await self.checkpoint(p)

    async def checkpoint(self, p: int) -> None:
        """Checkpoint partition p, once the output it covers is durable."""
        await asyncio.gather(*self._sent.get(p, []))
        if not self.own.active(p):  # revoked meanwhile: the state may hold output that was not sent
            return
        self.io.write_checkpoint(p, self.step.snapshot(p))
        if self.settings.flush_checkpoint_alone:
            await self.io.flush()
        self._sent[p], self._since_checkpoint[p], self._last_checkpoint[p] = [], 0, self.monotonic()


def pieces(records: list[Record], messages: int, size: int) -> Iterator[list[Record]]:
    """Consecutive runs of `records` of at most `messages` records and `size` bytes of values; a record
    larger than `size` alone makes a piece (every piece holds at least one record)."""
    start, held = 0, 0
    for i, rec in enumerate(records):
        n = len(rec[2])
        if i > start and (i - start >= messages or held + n > size):
            yield records[start:i]
            start, held = i, 0
        held += n
    if start < len(records):
        yield records[start:]


def _record(rec: Any, wall: Callable[[], float]) -> Record:
    """(offset, key, value, processing time): the record's Kafka timestamp (ms) when it has one."""
    ts = rec.timestamp
    return rec.offset, rec.key, rec.value or b"", ts / 1000.0 if ts is not None and ts >= 0 else wall()
