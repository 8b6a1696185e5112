"""A `runtime.partition_state.PartitionRuntime` wired to Faust: the one way the stateful agents (windows,
anomaly) run on the runtime, so each agent module is only its step, its topics and its metrics.

- Faust owns group membership, the worker's lifecycle and the checkpoint table (a plain Table, bytes
  values, key = input partition, on the changelog partition of the same number); its stream only says
  which partitions are ours. On its first events since (re)assignment the runtime resumes every newly
  assigned partition, and Faust's fetching of them is paused: the runtime's own consumer reads them, since
  Faust spends ~100 µs of its own per message before an agent sees it, the whole budget of a
  single-sample message. Every agent reading a topic does so through its runtime, so the pause is
  always on (Faust resumes fetching after its recovery at a rebalance: such events are dropped and it
  is paused again).
- Checkpoints are flushed alone in their own batch only when the broker has tansu's ListOffsets defect
  (`runtime.broker_defects`, probed once per worker).
- On revocation and before a graceful stop leaves the group the runtime releases the partitions (no new
  work, the work under way finished, its sends durable), so the new owner's checkpoint and last sequence
  number are final.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faust.types import TP

from watchkeeper.runtime.checkpoint_log import cut, newest_complete, part_of, parts_needed
from watchkeeper.runtime.exactly_once import STREAM_HEADER, Headers
from watchkeeper.runtime.partition_log import iter_chunks, iter_range, last_of_stream, last_records
from watchkeeper.runtime.partition_state import OutRecord, PartitionRuntime, RuntimeSettings

log = logging.getLogger("watchkeeper.runtime")
# A checkpoint record's largest size: under Kafka's default max.message.bytes (1,048,588), with room for its
# key and headers; a larger checkpoint is written as several records (`runtime.checkpoint_log`).
CHECKPOINT_RECORD_BYTES = 1_000_000
RAW: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


class FaustPartitionIO:
    """The runtime's broker side in the worker: checkpoints in a Faust table, output through Faust's
    producer, reads of the logs through their own consumers (`runtime.partition_log`). `stream`: this
    writer's name on an output topic other writers share (`runtime.exactly_once`); None when it is alone."""

    def __init__(self, app: faust.App, bootstrap: str, source: str, output: str, deadletter: Any,
                 changelog: Any, state: Any, stream: str | None = None,
                 on_sent: Callable[[list[OutRecord]], None] = lambda records: None,
                 record_bytes: int = CHECKPOINT_RECORD_BYTES) -> None:
        self.app, self.bootstrap, self.source, self.output = app, bootstrap, source, output
        self.deadletter, self.changelog, self.state = deadletter, changelog, state
        self.stream, self.on_sent, self.record_bytes = stream, on_sent, record_bytes

    async def newest_checkpoints(self, parts: list[int]) -> dict[int, bytes | None]:
        """The changelog's newest complete checkpoint per partition, read through a fetch: Faust's own
        recovery reads up to ListOffsets(latest), which tansu 0.6.0 answers wrongly (DESIGN.md), so it may
        miss the newest; and a checkpoint cut into parts (`runtime.checkpoint_log`) is read whole."""
        topic = self.changelog.get_topic_name()
        found = await last_records(self.bootstrap, topic, parts)
        out: dict[int, bytes | None] = {}
        for p in parts:
            last = found[p]
            if last is None or not last.value:
                value = self.state.data.get(str(p).encode())  # the table's (a whole checkpoint or nothing)
                out[p] = bytes(value) if value is not None and part_of(bytes(value)) is None else None
            elif part_of(last.value) is None:
                out[p] = bytes(last.value)
            else:
                out[p] = await self._parts(topic, p, last.offset + 1, parts_needed(last.value))
        return out

    async def _parts(self, topic: str, p: int, stop: int, size: int) -> bytes | None:
        """The newest complete checkpoint before `stop`, read backwards in windows that double (a write cut
        short by a crash leaves a few parts of the next one after it)."""
        while True:
            start = max(0, stop - size)
            values = [rec.value or b"" async for rec in iter_range(self.bootstrap, topic, p, start, stop)]
            found = newest_complete(values)
            if found is not None or start == 0:
                return found
            size *= 2

    def write_checkpoint(self, partition: int, data: bytes) -> None:
        # What `state[key] = value` does, with the changelog partition named (p, as the input's): checkpoints
        # are written outside Faust's event iteration, where it has no current event. One larger than a
        # Kafka message goes as consecutive parts.
        key = str(partition).encode()
        for value in cut(data, self.record_bytes):
            self.state.send_changelog(partition, key, value)
        self.state.data[key] = data

    async def flush(self) -> None:
        await self.app.producer.flush()

    async def last_output(self, parts: list[int]) -> dict[int, Headers | None]:
        if self.stream is None:
            found = await last_records(self.bootstrap, self.output, parts)
        else:
            found = await last_of_stream(self.bootstrap, self.output, parts, self.stream)
        return {p: (rec.headers if rec is not None else None) for p, rec in found.items()}

    async def send(self, partition: int, records: list[OutRecord]) -> list[asyncio.Future[Any]]:
        producer: AIOKafkaProducer = self.app.producer._ensure_producer()  # type: ignore[attr-defined]
        if self.stream is not None:
            named = (STREAM_HEADER, self.stream.encode())
            records = [(key, value, [*headers, named]) for key, value, headers in records]
        pending = []
        batch = producer.create_batch()
        for key, value, headers in records:
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                pending.append(await producer.send_batch(batch, self.output, partition=partition))
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None, headers=headers)
        pending.append(await producer.send_batch(batch, self.output, partition=partition))
        self.on_sent(records)
        return pending

    async def dead_letter(self, key: bytes | None, value: bytes) -> None:
        await self.deadletter.send(key=key, value=value)

    def replay(self, partition: int, start: int, stop: int | None, chunk: int) -> AsyncIterator[list[Any]]:
        return iter_chunks(self.bootstrap, self.source, partition, start, stop, chunk=chunk)


@dataclass(frozen=True)
class Wiring:
    """What `wire` needs besides the runtime: the Faust topic it owns partitions of, and batching."""

    name: str  # the Faust agent's name
    bootstrap: str
    batch_messages: int
    batch_within: float
    every: Callable[[], None] = lambda: None  # called between fetches (e.g. the window agent's series release)


def wire(app: faust.App, runtime: PartitionRuntime, source: faust.TopicT, how: Wiring) -> None:
    """A Faust agent on `source` that only tells the runtime which partitions are ours, a task feeding it
    through its own consumer, and the revocation and shutdown hooks that release its partitions."""
    topic = runtime.topic
    settings = runtime.settings
    probed: list[bool] = []

    # Partitions the group gave us that still need a resume. Learnt from the assignment itself, not only from
    # the stream's events: an empty partition yields no event, and several agents on one topic share Faust's
    # consumer, so another agent's resume may pause a partition before this agent's stream saw any of it.
    pending: set[int] = set()

    async def assigned(sender: Any, assigned: set[Any], **_: Any) -> None:
        pending.clear()
        pending.update(tp.partition for tp in assigned if tp.topic == topic)

    async def revoked(sender: Any, revoked: set[Any], **_: Any) -> None:
        gone = {tp.partition for tp in revoked if tp.topic == topic}
        pending.difference_update(gone)
        await runtime.release(gone)

    async def before_shutdown(sender: Any, **_: Any) -> None:
        await runtime.stop()  # before the consumer leaves the group

    app.on_partitions_assigned.connect(assigned)  # type: ignore[arg-type]
    app.on_partitions_revoked.connect(revoked)  # type: ignore[arg-type]
    app.on_before_shutdown.connect(before_shutdown)  # type: ignore[arg-type]

    async def resume(parts: list[int]) -> None:
        """Faust's fetching of newly assigned partitions is paused before their resume (what it fetches
        meanwhile is only dropped), and un-paused if the resume fails (its next events try again)."""
        log.info("%s: resuming %s[%s]", runtime.label, topic, ",".join(map(str, parts)))
        app.consumer.pause_partitions([TP(topic, p) for p in parts])
        if not probed:  # a resume's first checkpoint needs to know which workarounds are on
            defects = await app.broker_defects.get()  # type: ignore[attr-defined]
            runtime.settings = RuntimeSettings(**{**vars(settings),
                                                  "flush_checkpoint_alone": defects.list_offsets_latest})
            probed.append(True)
        try:
            await runtime.resume(parts)
            if runtime.feed is None:
                consumer = AIOKafkaConsumer(bootstrap_servers=how.bootstrap, enable_auto_commit=False,
                                            auto_offset_reset="earliest", fetch_max_wait_ms=50,
                                            max_partition_fetch_bytes=8_000_000)
                await consumer.start()
                if runtime.feed is None:
                    runtime.attach_feed(consumer)
                else:  # made meanwhile by another resume
                    await consumer.stop()
        except BaseException:
            app.consumer.resume_partitions([TP(topic, p) for p in parts if p not in runtime.live()])
            raise

    runtime.resumer = resume

    async def partitions(stream: faust.StreamT) -> None:
        """Faust's stream only says which partitions are ours: its first events since (re)assignment start
        every newly assigned partition."""
        async for events in stream.take_events(how.batch_messages, within=how.batch_within):  # type: ignore[attr-defined]
            assigned = {tp.partition for tp in app.consumer.assignment() if tp.topic == topic}
            new = runtime.assign(assigned)
            if new:
                await resume(new)
            again = {event.message.partition for event in events} & set(runtime.live())
            if again:
                app.consumer.pause_partitions([TP(topic, p) for p in again])

    app.agent(source, name=how.name)(partitions)

    async def take_pending() -> None:
        """Resume the assigned partitions no stream event has started yet (still ours: Faust's assignment)."""
        ours = {tp.partition for tp in app.consumer.assignment() if tp.topic == topic}
        parts = pending & ours
        pending.clear()
        new = runtime.assign(parts)
        if not new:
            return
        try:
            await resume(new)
        except Exception:  # left ASSIGNED: tried again at the next loop
            log.exception("%s: resuming %s failed; trying again", topic, new)
            pending.update(new)
            await asyncio.sleep(1.0)

    async def feed() -> None:
        """The data path: the runtime's own consumer, a fetch at a time (`PartitionRuntime.feed_once`)."""
        try:
            while True:
                if pending:
                    await take_pending()
                if runtime.feed is None or not runtime.live():
                    await asyncio.sleep(0.05)
                    continue
                await runtime.feed_once()
                how.every()
        finally:
            if runtime.feed is not None:
                fed, runtime.feed = runtime.feed, None
                await fed.stop()

    feed.__name__ = feed.__qualname__ = f"feed_{how.name.rsplit('.', 1)[-1]}"
    app.task(feed)
