"""The window agent: `wk.samples` -> closed windows on `wk.aggregates`, bad and late input on
`wk.deadletter`. The logic is in `agents.window_step` and `core.windows`; the delivery contract (a
partition's lifecycle, checkpoints, exactly-once output by `wk-seq`, the feed, revocation) is the
runtime's (`runtime.partition_state`). This module only wires them to Faust:

- Faust owns group membership, the worker's lifecycle and the checkpoint table (a plain Table, bytes
  values, key = input partition, on the changelog partition of the same number); its stream only says
  which partitions are ours. On its first events since (re)assignment the runtime resumes every newly
  assigned partition, and Faust's fetching of them is paused (when no other agent reads the samples topic
  through Faust): the runtime's own consumer reads them, since Faust spends ~100 µs of its own per message
  before an agent sees it, the whole budget of a single-sample message.
- Checkpoints every `snapshot_every_messages` messages or `snapshot_every_seconds`; each is flushed alone
  in its own batch only when the broker has tansu's ListOffsets defect (`runtime.broker_defects`).
- Time: each message's processing time is its Kafka record timestamp (replayed identically). A partition
  without messages for `windows.idle_timeout` (this worker's monotonic clock, checked every second, only
  once it is caught up) gets an idle close (`WindowStep.tick`), replayed at the same point after a restart.
- Several workers (one consumer group): on revocation and before a graceful stop leaves the group the
  runtime releases the partitions (no new work, the work under way finished, its sends durable), so the
  new owner's checkpoint and last sequence number are final.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faust.types import TP

from agents.window_step import WindowLimits, WindowStep
from agents.worker_metrics import observe_window_latency, register_lag_timer, register_source_gauges
from plumbing.config import Config
from plumbing.self_metrics import DEADLETTERS, SAMPLES_CONSUMED, SAMPLES_REJECTED
from runtime.exactly_once import Headers
from runtime.partition_log import iter_chunks, last_records
from runtime.partition_state import OutRecord, PartitionRuntime, RuntimeSettings, StepOutput
from schemas.topics import DEFAULT_TOPICS

RELEASE_EVERY_SECONDS = 60.0  # how often series no partition holds are released from the registry

log = logging.getLogger("watchkeeper.windows")
STATE_TABLE = "window-state"


# Collector thresholds for the worker process: a batch allocates tens of thousands of short-lived lists
# and strings, and at CPython's default (700, 10, 10) young collections run every few hundred of them and
# full ones walk Faust's large heap of long-lived objects often: ~10 % of the worker's CPU in the bench.
GC_THRESHOLDS = (20_000, 50, 1_000)


class FaustPartitionIO:
    """The runtime's broker side in the worker: checkpoints in a Faust table, output through Faust's
    producer, reads of the logs through their own consumers (`runtime.partition_log`)."""

    def __init__(self, app: faust.App, bootstrap: str, samples: str, aggregates: str, deadletter: Any,
                 changelog: Any, state: Any) -> None:
        self.app, self.bootstrap, self.samples, self.aggregates = app, bootstrap, samples, aggregates
        self.deadletter, self.changelog, self.state = deadletter, changelog, state

    async def newest_checkpoints(self, parts: list[int]) -> dict[int, bytes | None]:
        """The changelog's last record per partition, read through a fetch: Faust's own recovery reads up
        to ListOffsets(latest), which tansu 0.6.0 answers wrongly (DESIGN.md), so it may miss the newest."""
        found = await last_records(self.bootstrap, self.changelog.get_topic_name(), parts)
        out: dict[int, bytes | None] = {}
        for p in parts:
            last = found[p]
            value = last.value if last is not None and last.value else self.state.data.get(str(p).encode())
            out[p] = bytes(value) if value is not None else None
        return out

    def write_checkpoint(self, partition: int, data: bytes) -> None:
        # What `state[key] = value` does, with the changelog partition named (p, as the input's): checkpoints
        # are written outside Faust's event iteration, where it has no current event.
        key = str(partition).encode()
        self.state.send_changelog(partition, key, data)
        self.state.data[key] = data

    async def flush(self) -> None:
        await self.app.producer.flush()

    async def last_output(self, parts: list[int]) -> dict[int, Headers | None]:
        found = await last_records(self.bootstrap, self.aggregates, parts)
        return {p: (rec.headers if rec is not None else None) for p, rec in found.items()}

    async def send(self, partition: int, records: list[OutRecord]) -> list[asyncio.Future[Any]]:
        producer: AIOKafkaProducer = self.app.producer._ensure_producer()  # type: ignore[attr-defined]
        pending = []
        batch = producer.create_batch()
        for key, value, headers in records:
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                pending.append(await producer.send_batch(batch, self.aggregates, partition=partition))
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None, headers=headers)
        pending.append(await producer.send_batch(batch, self.aggregates, partition=partition))
        observe_window_latency([(k, v) for k, v, _ in records], time.time())
        return pending

    async def dead_letter(self, key: bytes | None, value: bytes) -> None:
        await self.deadletter.send(key=key, value=value)

    def replay(self, partition: int, start: int, stop: int | None, chunk: int) -> AsyncIterator[list[Any]]:
        return iter_chunks(self.bootstrap, self.samples, partition, start, stop, chunk=chunk)


def register(app: faust.App, cfg: Config) -> None:
    gc.set_threshold(*GC_THRESHOLDS)
    t, w = cfg.kafka.topics, cfg.windows
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw",
                           "value_serializer": "raw"}
    n = DEFAULT_TOPICS["samples"].partitions  # the state table is co-partitioned with the samples
    samples = app.topic(t.samples, partitions=n, **raw)
    deadletter = app.topic(t.deadletter, partitions=DEFAULT_TOPICS["deadletter"].partitions, **raw)
    changelog = app.topic(f"{app.conf.id}-{STATE_TABLE}-changelog", partitions=n, **raw)
    state = app.Table(STATE_TABLE, partitions=n, key_type=bytes, value_type=bytes, changelog_topic=changelog)
    step = WindowStep(t.samples, limits=WindowLimits(
        width=w.width, allowed_lateness=w.allowed_lateness, max_future=w.max_future, idle_timeout=w.idle_timeout,
        max_series=w.max_series, series_idle=w.series_idle_seconds))
    app.window_step = step  # type: ignore[attr-defined]
    consumed = SAMPLES_CONSUMED.labels(t.samples)
    io = FaustPartitionIO(app, cfg.kafka.bootstrap, t.samples, t.aggregates, deadletter, changelog, state)
    settings = RuntimeSettings(every_messages=w.snapshot_every_messages, every_seconds=w.snapshot_every_seconds,
                               batch_messages=w.batch_messages, idle_timeout=step.idle_timeout)
    def observe(p: int, out: StepOutput) -> None:
        """Self-metrics of one step."""
        consumed.inc(out.applied)
        for reason, n in out.rejected.items():
            SAMPLES_REJECTED.labels(reason).inc(n)
        for reason, n in out.dead.items():
            DEADLETTERS.labels(reason).inc(n)

    runtime = PartitionRuntime(t.samples, step, io, settings, observe=observe)
    app.window_runtime = runtime  # type: ignore[attr-defined]

    def highwater(p: int) -> int | None:
        """Whoever fetches partition p: the runtime's feed once it is live (Faust's goes stale, paused)."""
        high = runtime.highwater(p)
        return high if high is not None else app.consumer.highwater(TP(t.samples, p))

    register_lag_timer(app, t.samples, step.progress, highwater=highwater)
    register_source_gauges(app, step)

    async def revoked(sender: Any, revoked: set[Any], **_: Any) -> None:
        await runtime.release({tp.partition for tp in revoked if tp.topic == t.samples})

    async def before_shutdown(sender: Any, **_: Any) -> None:
        await runtime.stop()  # before the consumer leaves the group

    app.on_partitions_revoked.connect(revoked)  # type: ignore[arg-type]
    app.on_before_shutdown.connect(before_shutdown)  # type: ignore[arg-type]

    def alone() -> bool:
        """Whether this is the only agent reading the samples topic through Faust. Only then is Faust's
        fetching of it paused; otherwise (the anomaly agent scores raw samples) Faust keeps delivering
        them to the others, and this agent ignores its events of the partitions the runtime reads."""
        return not any(agent is not windows and t.samples in getattr(agent.channel, "topics", ())
                       for agent in app.agents.values())

    async def resume(parts: list[int]) -> None:
        """Faust's fetching of newly assigned partitions is paused before their resume (what it fetches
        meanwhile is only dropped), and un-paused if the resume fails (its next events try again)."""
        if alone():
            app.consumer.pause_partitions([TP(t.samples, p) for p in parts])
        if not probed:  # a resume's first checkpoint needs to know which workarounds are on
            defects = await app.broker_defects.get()  # type: ignore[attr-defined]
            runtime.settings = RuntimeSettings(**{**vars(settings),
                                                  "flush_checkpoint_alone": defects.list_offsets_latest})
            probed.append(True)
        try:
            await runtime.resume(parts)
            if runtime.feed is None:
                consumer = AIOKafkaConsumer(bootstrap_servers=cfg.kafka.bootstrap, enable_auto_commit=False,
                                            auto_offset_reset="earliest", fetch_max_wait_ms=50,
                                            max_partition_fetch_bytes=8_000_000)
                await consumer.start()
                if runtime.feed is None:
                    runtime.attach_feed(consumer)
                else:  # made meanwhile by another resume
                    await consumer.stop()
        except BaseException:
            if alone():
                app.consumer.resume_partitions([TP(t.samples, p) for p in parts if p not in runtime.live()])
            raise

    runtime.resumer = resume
    probed: list[bool] = []

    @app.agent(samples, name="watchkeeper.windows")
    async def windows(stream: faust.StreamT) -> None:
        """Faust's stream only says which partitions are ours: its first events since (re)assignment start
        every newly assigned partition. Faust resumes fetching after its recovery at a rebalance: such
        events are dropped and it is paused again."""
        async for events in stream.take_events(w.batch_messages, within=w.batch_within):  # type: ignore[attr-defined]
            assigned = {tp.partition for tp in app.consumer.assignment() if tp.topic == t.samples}
            new = runtime.assign(assigned)
            if new:
                await resume(new)
            again = {event.message.partition for event in events} & set(runtime.live())
            if again and alone():
                app.consumer.pause_partitions([TP(t.samples, p) for p in again])

    @app.task
    async def feed_windows() -> None:
        """The data path: the runtime's own consumer, a fetch at a time (`PartitionRuntime.feed_once`)."""
        last_release = time.monotonic()
        try:
            while True:
                if runtime.feed is None or not runtime.live():
                    await asyncio.sleep(0.05)
                    continue
                await runtime.feed_once()
                if time.monotonic() - last_release >= RELEASE_EVERY_SECONDS:
                    last_release = time.monotonic()
                    step.release_series()
        finally:
            if runtime.feed is not None:
                feed, runtime.feed = runtime.feed, None
                await feed.stop()
