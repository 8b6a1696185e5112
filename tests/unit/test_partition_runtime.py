"""The partition runtime's lifecycle with a fake broker and a fake feed consumer (no Kafka): resume from a
checkpoint, exactly-once output across owners, and the revocation races: a revocation landing inside a
batch's sends or inside a resume's reads. Every interleaving is forced by gates the test opens, never by
timing, so each test is deterministic."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka.structs import TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from watchkeeper.core.checkpoint_frame import frame, unframe
from watchkeeper.runtime.broker_defects import BrokerDefects, DefectsProbe
from watchkeeper.runtime.exactly_once import Headers, seq_of
from watchkeeper.runtime.ownership import Event, LifecycleError, Ownership, Phase
from watchkeeper.runtime.partition_state import (
    OutRecord,
    PartitionProgress,
    PartitionRuntime,
    Record,
    RuntimeSettings,
    StepOutput,
    pieces,
)

TOPIC = "in"


@dataclass
class Rec:
    offset: int
    key: bytes | None
    value: bytes
    timestamp: int


class EchoStep:
    """One output record per input record (its offset), and a running sum as the state."""

    def __init__(self) -> None:
        self.progress: dict[int, PartitionProgress] = {}
        self.sums: dict[int, int] = {}
        self.ticked: dict[int, int] = {}  # partition -> the sum at its last tick (part of the state)

    def restore(self, partition: int, data: bytes | None) -> None:
        self.ticked.pop(partition, None)
        if data is None:
            self.progress[partition], self.sums[partition] = PartitionProgress(), 0
            return
        head = unframe(data).head
        self.progress[partition] = PartitionProgress(head["offset"], head["seq"])
        self.sums[partition] = head["sum"]
        if head["ticked"] is not None:
            self.ticked[partition] = head["ticked"]

    def snapshot(self, partition: int) -> bytes:
        prog = self.progress[partition]
        return frame({"offset": prog.offset, "seq": prog.seq, "sum": self.sums[partition],
                      "ticked": self.ticked.get(partition)})

    def forget(self, partition: int) -> None:
        self.progress.pop(partition, None)
        self.sums.pop(partition, None)
        self.ticked.pop(partition, None)

    def process_records(self, partition: int, records: Sequence[Record], now: float) -> StepOutput:
        prog = self.progress[partition]
        out = StepOutput(first_seq=prog.seq + 1)
        for offset, _, value, _ in records:
            prog.offset = offset
            self.sums[partition] += int(value)
            out.records.append((b"k", str(offset).encode()))
        prog.seq += len(out.records)
        return out

    def tick(self, partition: int) -> StepOutput:
        """An idle close: one record (``tick@<last offset>``) when input came since the last one."""
        prog = self.progress[partition]
        out = StepOutput(first_seq=prog.seq + 1)
        if self.sums[partition] != self.ticked.get(partition):
            self.ticked[partition] = self.sums[partition]
            out.records.append((b"k", b"tick@%d" % prog.offset))
            out.tick_after = prog.offset
            prog.seq += 1
        return out


class FakeBroker:
    """Input, output and checkpoint logs in memory. `send_gate`, when cleared, holds every send (as a
    producer whose buffer is full does); `read_gate` holds a resume's checkpoint reads."""

    def __init__(self, inputs: dict[int, int]) -> None:
        self.input = {p: [Rec(i, b"src", str(i).encode(), 1_000_000 + i) for i in range(n)] for p, n in inputs.items()}
        self.output: dict[int, list[OutRecord]] = {p: [] for p in inputs}
        self.changelog: dict[int, list[bytes]] = {p: [] for p in inputs}
        self.deadletters: list[bytes] = []
        self.send_gate = asyncio.Event()
        self.send_gate.set()
        self.read_gate = asyncio.Event()
        self.read_gate.set()
        self.events: list[str] = []


class FakeIO:
    def __init__(self, broker: FakeBroker, name: str) -> None:
        self.broker, self.name = broker, name

    async def newest_checkpoints(self, parts: list[int]) -> dict[int, bytes | None]:
        await self.broker.read_gate.wait()
        return {p: (self.broker.changelog[p][-1] if self.broker.changelog[p] else None) for p in parts}

    def write_checkpoint(self, partition: int, data: bytes) -> None:
        self.broker.changelog[partition].append(data)
        self.broker.events.append(f"{self.name} checkpoint {partition}")

    async def flush(self) -> None:
        await self.broker.send_gate.wait()

    async def last_output(self, parts: list[int]) -> dict[int, Headers | None]:
        return {p: (self.broker.output[p][-1][2] if self.broker.output[p] else None) for p in parts}

    async def send(self, partition: int, records: list[OutRecord]) -> list[asyncio.Future[Any]]:
        await self.broker.send_gate.wait()
        self.broker.output[partition].extend(records)
        self.broker.events.append(f"{self.name} send {partition}")
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return [done]

    async def dead_letter(self, key: bytes | None, value: bytes) -> None:
        self.broker.deadletters.append(value)

    async def replay(self, partition: int, start: int, stop: int | None, chunk: int) -> AsyncIterator[list[Any]]:
        end = len(self.broker.input[partition]) if stop is None else stop
        for at in range(start, end, chunk):
            yield self.broker.input[partition][at:min(at + chunk, end)]


class FakeConsumer:
    """The feed: reads the assigned partitions of the broker's input from the positions sought."""

    def __init__(self, broker: FakeBroker, fail_once: bool = False) -> None:
        self.broker, self.fail_once = broker, fail_once
        self.positions: dict[int, int] = {}

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.positions = {tp.partition: self.positions.get(tp.partition, 0) for tp in partitions}

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.positions[partition.partition] = offset

    def highwater(self, partition: TopicPartition) -> int | None:
        return len(self.broker.input[partition.partition])

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[Any]]:
        if self.fail_once:
            self.fail_once = False
            raise ConnectionError("broker away")
        got: dict[TopicPartition, list[Any]] = {}
        for p, at in self.positions.items():
            recs = self.broker.input[p][at:at + (max_records or 10)]
            if recs:
                got[TopicPartition(TOPIC, p)] = recs
                self.positions[p] = at + len(recs)
        await asyncio.sleep(0)
        return got

    async def stop(self) -> None:
        return None


def worker(broker: FakeBroker, name: str, every_messages: int = 3, batch: int = 2,
           batch_bytes: int = 1_000_000) -> PartitionRuntime:
    settings = RuntimeSettings(every_messages=every_messages, every_seconds=1e9, batch_messages=batch,
                               batch_bytes=batch_bytes)
    rt = PartitionRuntime(TOPIC, EchoStep(), FakeIO(broker, name), settings, monotonic=lambda: 0.0,
                          wall=lambda: 0.0)
    rt.attach_feed(FakeConsumer(broker))
    return rt


async def settle(rounds: int = 50) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


def offsets_out(broker: FakeBroker, p: int) -> list[int | str]:
    return [value.decode() if value.startswith(b"tick") else int(value) for _, value, _ in broker.output[p]]


def seqs_out(broker: FakeBroker, p: int) -> list[int]:
    return [seq_of(headers) for _, _, headers in broker.output[p]]


# -- the lifecycle -----------------------------------------------------------------------------------


def test_the_lifecycle_moves_through_its_phases_in_order() -> None:
    own = Ownership()
    path = [(Event.ASSIGN, Phase.ASSIGNED), (Event.RESUME, Phase.RESUMING), (Event.RESUMED, Phase.LIVE),
            (Event.REVOKE, Phase.RELEASING), (Event.RELEASED, Phase.IDLE)]
    for event, phase in path:
        assert own.transition(0, event) is phase
    assert own.generation(0) == 1  # one revocation


def test_a_transition_the_lifecycle_does_not_have_is_refused() -> None:
    own = Ownership()
    with pytest.raises(LifecycleError, match="no transition from idle on resumed"):
        own.transition(0, Event.RESUMED)
    own.transition(0, Event.ASSIGN)
    with pytest.raises(LifecycleError, match="from assigned on released"):
        own.transition(0, Event.RELEASED)


def test_assigning_an_owned_partition_again_keeps_its_phase() -> None:
    own = Ownership()
    for event in (Event.ASSIGN, Event.RESUME, Event.ASSIGN, Event.RESUMED, Event.ASSIGN):
        own.transition(0, event)
    assert own.phase(0) is Phase.LIVE
    own.transition(0, Event.REVOKE)
    assert own.transition(0, Event.ASSIGN) is Phase.RELEASING


def test_a_failed_resume_leaves_the_partition_assigned_for_the_next_try() -> None:
    own = Ownership()
    for event in (Event.ASSIGN, Event.RESUME, Event.FAILED):
        own.transition(0, event)
    assert own.phase(0) is Phase.ASSIGNED


def test_a_stopping_worker_takes_nothing_new() -> None:
    own = Ownership()
    own.stopping = True
    assert own.transition(3, Event.ASSIGN) is Phase.IDLE


# -- checkpoints and exactly-once output ---------------------------------------------------------------


def test_resume_replays_from_the_checkpoint_and_a_crash_doubles_nothing() -> None:
    """Given 10 records on partition 0, worker A (batches of 2, a checkpoint every 4 messages) dies with
    no release after sending 0..6; worker B resumes from A's checkpoint at offset 3 and replays 4..9:
    every offset once on the output, with sequence numbers 1..10."""

    async def run() -> FakeBroker:
        broker = FakeBroker({0: 10})
        a = worker(broker, "a", every_messages=4)
        a.assign([0])
        broker.input[0], rest = broker.input[0][:7], broker.input[0][7:]
        assert await a.resume([0]) == [0]  # replays 0..6 at resume
        assert [unframe(c).head["offset"] for c in broker.changelog[0]] == [3]
        broker.input[0] += rest  # A dies here: its state after offset 6 is lost
        b = worker(broker, "b")
        b.assign([0])
        await b.resume([0])
        return broker

    broker = asyncio.run(run())
    assert offsets_out(broker, 0) == list(range(10))
    assert seqs_out(broker, 0) == list(range(1, 11))


def test_the_feed_delivers_live_input_in_batches_and_checkpoints() -> None:
    async def run() -> tuple[FakeBroker, PartitionRuntime]:
        broker = FakeBroker({0: 0, 1: 0})
        a = worker(broker, "a")
        a.assign([0, 1])
        assert await a.resume([0, 1]) == [0, 1]
        broker.input = FakeBroker({0: 5, 1: 4}).input
        for _ in range(5):
            await a.feed_once()
        return broker, a

    broker, a = asyncio.run(run())
    assert offsets_out(broker, 0) == [0, 1, 2, 3, 4] and offsets_out(broker, 1) == [0, 1, 2, 3]
    assert a.step.sums == {0: 10, 1: 6}  # type: ignore[attr-defined]
    assert a.live() == [0, 1]


def test_a_failed_fetch_resumes_from_the_checkpoints_and_doubles_nothing() -> None:
    async def run() -> FakeBroker:
        broker = FakeBroker({0: 4})
        a = worker(broker, "a", every_messages=100)
        a.assign([0])
        await a.resume([0])  # 0..3 out, no checkpoint yet
        broker.input[0] += FakeBroker({0: 6}).input[0][4:]
        a.attach_feed(FakeConsumer(broker, fail_once=True))
        await a.feed_once()  # fails: resumed from nothing, replays 0..5, sends only 4 and 5
        return broker

    broker = asyncio.run(run())
    assert offsets_out(broker, 0) == list(range(6))
    assert seqs_out(broker, 0) == list(range(1, 7))


def test_an_idle_close_missing_from_the_checkpoint_is_made_again_at_the_same_point_of_the_replay() -> None:
    """Worker A, quiet after offsets 0..2, makes an idle close (output `tick@2`, header wk-tick-after: 2)
    and dies before that close's checkpoint is durable; offsets 3, 4 arrive. Worker B resumes from the
    checkpoint at 2, makes the close again right after offset 2 (not sent: it is on the output), then
    3 and 4: the output is A's sequence continued, nothing twice."""

    async def run() -> FakeBroker:
        broker = FakeBroker({0: 3})
        now = [0.0]
        a = PartitionRuntime(TOPIC, EchoStep(), FakeIO(broker, "a"),
                             RuntimeSettings(every_messages=3, every_seconds=1e9, batch_messages=2, idle_timeout=30.0),
                             monotonic=lambda: now[0], wall=lambda: 0.0)
        a.attach_feed(FakeConsumer(broker))
        a.assign([0])
        await a.resume([0])
        assert len(broker.changelog[0]) == 1  # at offset 2
        now[0] = 31.0
        await a.feed_once()  # nothing fetched, caught up, quiet for 31 s: the idle close
        assert offsets_out(broker, 0) == [0, 1, 2, "tick@2"]
        broker.changelog[0].pop()  # A dies before the close's checkpoint is durable
        broker.input[0] += FakeBroker({0: 5}).input[0][3:]
        b = worker(broker, "b")
        b.assign([0])
        await b.resume([0])
        return broker

    broker = asyncio.run(run())
    assert offsets_out(broker, 0) == [0, 1, 2, "tick@2", 3, 4]
    assert seqs_out(broker, 0) == [1, 2, 3, 4, 5, 6]


# -- the revocation races --------------------------------------------------------------------------------


def test_a_revocation_inside_a_batch_waits_for_its_sends_and_writes_no_checkpoint_after() -> None:
    """The race of commit 5296139, forced: A's batch is inside its send (the producer's buffer is full)
    when partition 0 is revoked, and the next owner B resumes as soon as A's revocation returns.

    The old behaviour (forget the state and return at once) let B read the last sequence number before
    A's send landed, so B sent those records again, and A's batch then put the partition back and
    checkpointed its forgotten state. Here the revocation returns only after A's send landed, A writes no
    checkpoint after it, and B continues the sequence: every offset exactly once."""

    async def run() -> tuple[FakeBroker, PartitionRuntime, bool]:
        broker = FakeBroker({0: 3})
        a = worker(broker, "a", every_messages=3, batch=2)
        a.assign([0])
        await a.resume([0])  # 0..2 out, checkpoint at 2
        broker.input[0] += FakeBroker({0: 6}).input[0][3:]
        broker.send_gate.clear()
        batch = asyncio.create_task(a.feed_once())  # offsets 3, 4: blocked in the send
        await settle()
        assert not batch.done()
        revocation = asyncio.create_task(a.release([0]))
        broker.events.append("revoked")

        async def next_owner() -> PartitionRuntime:
            await revocation  # Kafka assigns the partition elsewhere once every revocation returned
            b = worker(broker, "b")
            b.assign([0])
            await b.resume([0])
            return b

        b_task = asyncio.create_task(next_owner())
        await settle()
        returned_early = revocation.done()
        broker.send_gate.set()
        await asyncio.gather(batch, revocation)
        b = await b_task
        assert a.own.phase(0) is Phase.IDLE and 0 not in a.last_sent and 0 not in a.step.progress
        return broker, b, returned_early

    broker, b, returned_early = asyncio.run(run())
    assert offsets_out(broker, 0) == list(range(6))
    assert seqs_out(broker, 0) == list(range(1, 7))
    after = broker.events[broker.events.index("revoked"):]
    assert "a checkpoint 0" not in after
    assert b.step.sums[0] == sum(range(6))  # type: ignore[attr-defined]
    assert not returned_early, "the revocation returned while the partition's batch was sending"


def test_a_revocation_during_a_resume_keeps_the_stale_resume_from_taking_the_partition() -> None:
    """A resume is reading partition 0's checkpoint when 0 is revoked (and assigned again): the stale
    resume does not make it live, and the new assignment resumes it afresh."""

    async def run() -> tuple[FakeBroker, list[int]]:
        broker = FakeBroker({0: 4})
        a = worker(broker, "a")
        a.assign([0])
        broker.read_gate.clear()
        resume = asyncio.create_task(a.resume([0]))
        await settle()
        revocation = asyncio.create_task(a.release([0]))
        await settle()
        assert not revocation.done()  # it waits for the resume's reads
        broker.read_gate.set()
        took = await resume
        await revocation
        assert a.own.phase(0) is Phase.IDLE and broker.output[0] == []
        a.assign([0])  # back to A
        return broker, took + await a.resume([0])

    broker, took = asyncio.run(run())
    assert took == [0]
    assert offsets_out(broker, 0) == [0, 1, 2, 3]


def test_stop_releases_every_partition_and_takes_no_new_one() -> None:
    async def run() -> PartitionRuntime:
        broker = FakeBroker({0: 2, 1: 2})
        a = worker(broker, "a")
        a.assign([0, 1])
        await a.resume([0, 1])
        await a.stop()
        assert a.assign([2]) == []
        return a

    a = asyncio.run(run())
    assert a.live() == [] and a.last_sent == {} and a.step.progress == {}


def test_without_an_answer_from_the_broker_every_workaround_stays_on() -> None:
    """The probe is advice: a broker that cannot be probed is assumed to have every known defect."""

    async def run() -> BrokerDefects:
        probe = DefectsProbe("127.0.0.1:1", "wk-broker-probe")  # nothing listens on port 1
        await probe.run()
        return await probe.get()

    assert asyncio.run(run()) == BrokerDefects(list_offsets_latest=True)


# -- bounded steps: a fetch's share or a replay's chunk cut into pieces, the loop turning between them ------


def test_pieces_cut_by_messages_and_by_bytes_and_an_oversized_record_goes_alone() -> None:
    """Values of 1, 1, 1, 2, 2, 5, 1 bytes, at most 3 messages and 3 bytes a piece."""
    records: list[Record] = [(i, None, b"x" * n, 0.0) for i, n in enumerate([1, 1, 1, 2, 2, 5, 1])]
    got = [[r[0] for r in piece] for piece in pieces(records, 3, 3)]
    assert got == [[0, 1, 2], [3], [4], [5], [6]]
    assert list(pieces([], 3, 3)) == []


@given(st.lists(st.integers(0, 20)), st.integers(1, 6), st.integers(1, 30))
def test_pieces_keep_every_record_in_order_within_both_bounds(sizes: list[int], messages: int, size: int) -> None:
    records: list[Record] = [(i, None, b"x" * n, 0.0) for i, n in enumerate(sizes)]
    got = list(pieces(records, messages, size))
    assert [r for piece in got for r in piece] == records
    for piece in got:
        assert 1 <= len(piece) <= messages
        assert sum(len(r[2]) for r in piece) <= size or len(piece) == 1


class LoggingStep(EchoStep):
    """EchoStep that logs each call's offsets in a log the test shares with a task taking loop turns."""

    def __init__(self, log: list[Any]) -> None:
        super().__init__()
        self.log = log

    def process_records(self, partition: int, records: Sequence[Record], now: float) -> StepOutput:
        self.log.append([r[0] for r in records])
        return super().process_records(partition, records, now)


async def turns(log: list[Any], stop: asyncio.Event) -> None:
    """Marks every turn of the event loop it gets."""
    while not stop.is_set():
        log.append("turn")
        await asyncio.sleep(0)


def cut_worker(broker: FakeBroker, log: list[Any], batch_bytes: int) -> PartitionRuntime:
    settings = RuntimeSettings(every_messages=5, every_seconds=1e9, batch_messages=100, batch_bytes=batch_bytes)
    rt = PartitionRuntime(TOPIC, LoggingStep(log), FakeIO(broker, "a"), settings, monotonic=lambda: 0.0,
                          wall=lambda: 0.0)
    rt.attach_feed(FakeConsumer(broker))
    return rt


def run_cut(batch_bytes: int, live: bool) -> tuple[FakeBroker, list[Any]]:
    """12 records (values "0".."11": 1 or 2 bytes) on partition 0, read by the feed in one fetch (`live`)
    or by the resume's replay, while another task marks its turns of the loop."""

    async def run() -> tuple[FakeBroker, list[Any]]:
        broker = FakeBroker({0: 0 if live else 12})
        log: list[Any] = []
        a = cut_worker(broker, log, batch_bytes)
        a.assign([0])
        stop = asyncio.Event()
        ticker = asyncio.create_task(turns(log, stop))
        await a.resume([0])
        if live:
            broker.input = FakeBroker({0: 12}).input
            await a.feed_once()
        stop.set()
        await ticker
        return broker, log

    return asyncio.run(run())


@pytest.mark.parametrize("live", [True, False], ids=["feed", "replay"])
def test_a_share_cut_by_bytes_gives_the_loop_a_turn_between_pieces_and_the_same_output(live: bool) -> None:
    """At most 4 bytes a piece: 0..3, 4..7, 8..10, 11, each followed by a turn of the other task; output,
    sequence numbers and checkpoints as with no cut (one piece)."""
    whole, whole_log = run_cut(1_000_000, live)
    cut, log = run_cut(4, live)
    calls = [c for c in log if c != "turn"]
    assert calls == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10], [11]]
    assert [c for c in whole_log if c != "turn"] == [list(range(12))]
    for a, b in itertools.pairwise(log):
        assert not (a != "turn" and b != "turn"), "two pieces ran with no turn of the loop between them"
    assert offsets_out(cut, 0) == offsets_out(whole, 0) == list(range(12))
    assert seqs_out(cut, 0) == seqs_out(whole, 0) == list(range(1, 13))
    assert [unframe(c).head["offset"] for c in cut.changelog[0]] == \
        [unframe(c).head["offset"] for c in whole.changelog[0]]


def test_a_revocation_between_pieces_stops_the_share_and_the_next_owner_sends_the_rest_once() -> None:
    """A's fetch of 12 records is cut into 4 pieces; partition 0 is revoked while the first piece is
    sending. A takes no further piece and writes no checkpoint; B resumes and sends 4..11: every offset
    once."""

    async def run() -> tuple[FakeBroker, list[Any]]:
        broker = FakeBroker({0: 0})
        log: list[Any] = []
        a = cut_worker(broker, log, 4)
        a.assign([0])
        await a.resume([0])
        broker.input = FakeBroker({0: 12}).input
        broker.send_gate.clear()
        batch = asyncio.create_task(a.feed_once())  # the first piece (0..3) waits in its send
        await settle()
        revocation = asyncio.create_task(a.release([0]))
        broker.events.append("revoked")
        await settle()
        broker.send_gate.set()
        await asyncio.gather(batch, revocation)
        b = worker(broker, "b")
        b.assign([0])
        await b.resume([0])
        return broker, log

    broker, log = asyncio.run(run())
    assert log == [[0, 1, 2, 3]]
    assert "a checkpoint 0" not in broker.events[broker.events.index("revoked"):]
    assert offsets_out(broker, 0) == list(range(12))
    assert seqs_out(broker, 0) == list(range(1, 13))
