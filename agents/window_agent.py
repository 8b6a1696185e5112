"""The window agent: `wk.samples` -> closed windows on `wk.aggregates`, bad and late input on
`wk.deadletter`. The logic is in `agents.window_step` and `core.windows`; this is the delivery contract:

- State per input partition p is a snapshot (engine, last applied offset, emission count) in a plain
  Faust Table (bytes values, key = p), written every `snapshot_every_messages` messages or
  `snapshot_every_seconds` of p (checked after each batch), after the aggregates it covers are durable.
- Faust owns group membership, the table and the lifecycle; its stream only says which partitions are
  ours. On the first events since (re)assignment every assigned partition resumes at once: the newest
  snapshot is read from the changelog's last record (end from a fetch's high watermark, not ListOffsets,
  which tansu 0.6.0 answers wrongly), everything after it up to the partition's end is replayed from the
  samples topic, and then the partition is handed to the feed. Faust's committed offset is never
  trusted: after a graceful stop it can be past what the snapshot holds.
- The feed is our own aiokafka consumer (no group, positioned at each state's next offset) and Faust's
  fetching of those partitions is paused: Faust spends ~100 µs of its own per message before an agent
  sees it, which is the whole budget of a single-sample message. Each partition's share of a fetch
  (up to `batch_messages`) goes through the step as one batch: per message decode, lateness and
  watermark, as if alone; once per batch the closing, the formatting, the emission and at most one
  snapshot. Batch boundaries do not change which windows close or their order, so a replay cut
  differently numbers them the same. A revoked partition leaves the feed at once.
- Each changelog record is flushed alone, in its own batch, so Faust's own recovery (which reads up to
  ListOffsets(latest) = the last batch's base offset + 1 on tansu) also sees the newest snapshot.
- Windows of input partition p go to aggregates partition p, numbered by a per-partition sequence
  header (`wk-seq`). Replay is deterministic, so on (re)assignment the last number on aggregates p says
  which replayed windows were already sent: those are not sent again. Every window once, exactly.
- Time: each message's processing time is its Kafka record timestamp (replayed identically). A partition
  without messages for `windows.idle_timeout` (this worker's monotonic clock, checked every second, only
  once it is caught up) gets an idle close (`WindowStep.tick`), checkpointed before its next message; its
  windows carry a `wk-tick-after` header (the last offset before it), so a restart whose snapshot predates
  the close makes it again at the same point of the replay.
- Several workers (one consumer group): a partition moves only once its old owner let it go (`let_go`,
  on revocation and before a graceful stop leaves the group): no new work on it, the work under way
  finished and its sends durable, so the new owner's snapshot and last sequence number are final.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from faust.types import TP

from agents.emission_log import SEQ_HEADER, TICK_HEADER, iter_chunks, last_records, seq_of, tick_of
from agents.window_step import StepOutput, WindowLimits, WindowStep
from agents.worker_metrics import observe_window_latency, register_lag_timer, register_source_gauges
from plumbing.config import Config
from plumbing.self_metrics import DEADLETTERS, SAMPLES_CONSUMED, SAMPLES_REJECTED
from schemas.topics import DEFAULT_TOPICS

Record = tuple[int, bytes | None, bytes, float]  # offset, key, value, processing time (record timestamp)
TICK_EVERY_SECONDS = 1.0  # how often a partition without messages is checked for idle sources
RELEASE_EVERY_SECONDS = 60.0  # how often series no partition holds are released from the registry

log = logging.getLogger("watchkeeper.windows")
STATE_TABLE = "window-state"


# Collector thresholds for the worker process: a batch allocates tens of thousands of short-lived lists
# and strings, and at CPython's default (700, 10, 10) young collections run every few hundred of them and
# full ones walk Faust's large heap of long-lived objects often: ~10 % of the worker's CPU in the bench.
GC_THRESHOLDS = (20_000, 50, 1_000)


def register(app: faust.App, cfg: Config) -> None:
    gc.set_threshold(*GC_THRESHOLDS)
    t = cfg.kafka.topics
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw",
                           "value_serializer": "raw"}
    n = DEFAULT_TOPICS["samples"].partitions  # the state table is co-partitioned with the samples
    samples = app.topic(t.samples, partitions=n, **raw)
    deadletter = app.topic(t.deadletter, partitions=DEFAULT_TOPICS["deadletter"].partitions, **raw)
    changelog = app.topic(f"{app.conf.id}-{STATE_TABLE}-changelog", partitions=n, **raw)
    state = app.Table(STATE_TABLE, partitions=n, key_type=bytes, value_type=bytes, changelog_topic=changelog)
    w = cfg.windows
    step = WindowStep(t.samples, limits=WindowLimits(
        width=w.width, allowed_lateness=w.allowed_lateness, max_future=w.max_future, idle_timeout=w.idle_timeout,
        max_series=w.max_series, series_idle=w.series_idle_seconds))
    app.window_step = step  # type: ignore[attr-defined]
    consumed = SAMPLES_CONSUMED.labels(t.samples)
    emitted: dict[int, int] = {}  # partition -> last sequence number already on aggregates (this assignment)
    every_n, every_s = cfg.windows.snapshot_every_messages, cfg.windows.snapshot_every_seconds
    take, take_within = cfg.windows.batch_messages, cfg.windows.batch_within

    feed: list[AIOKafkaConsumer] = []  # our own consumer of the partitions in `fed` (made on first use)
    fed: set[int] = set()
    resuming: set[int] = set()  # partitions in resume() now
    busy: dict[int, int] = {}  # partition -> operations on it under way (a resume, a batch, a checkpoint)
    revocations: dict[int, int] = {}  # partition -> times revoked (a resume keeps those not revoked meanwhile)
    stopping: list[bool] = []  # non-empty once the worker stops: nothing is resumed any more

    def highwater(p: int) -> int | None:
        if p in fed and feed:
            return feed[0].highwater(TopicPartition(t.samples, p))
        return app.consumer.highwater(TP(t.samples, p))

    register_lag_timer(app, t.samples, step.progress, highwater=highwater)
    register_source_gauges(app, step)

    def refeed() -> None:
        """Point the feed at the partitions in `fed`, each at its state's next offset."""
        tps = [TopicPartition(t.samples, p) for p in sorted(fed)]
        feed[0].assign(tps)
        for tp in tps:
            feed[0].seek(tp, step.progress[tp.partition].offset + 1)

    @contextlib.contextmanager
    def working(parts: Iterable[int]) -> Iterator[None]:
        """Mark an operation on `parts` under way: a revocation waits for it to end."""
        parts = list(parts)
        for p in parts:
            busy[p] = busy.get(p, 0) + 1
        try:
            yield
        finally:
            for p in parts:
                busy[p] -= 1

    async def let_go(parts: set[int]) -> None:
        """Give partitions up so that the next owner neither resends nor misses a window. The next owner
        resumes from the newest snapshot and the last sequence number on aggregates, read once it is
        assigned them, i.e. after this returns (Kafka's eager rebalance assigns nothing before every
        member's revocation returned; a stopping worker leaves the group after this). So: nothing starts
        on them from here (`emitted` is what emit, catch_up and checkpoint check after every await), what
        is under way ends (a batch emits all it made, a checkpoint whose windows were not all sent is not
        written), and every send of theirs is durable before this returns."""
        for p in parts:
            emitted.pop(p, None)
            revocations[p] = revocations.get(p, 0) + 1
            fed.discard(p)
        if feed:
            refeed()
        while any(busy.get(p) for p in parts):
            await asyncio.sleep(0.005)
        await asyncio.gather(*(f for p in parts for f in sent.get(p, [])), return_exceptions=True)
        await app.producer.flush()
        for p in parts:
            sent.pop(p, None)
            step.forget(p)

    async def revoked(sender: Any, revoked: set[Any], **_: Any) -> None:
        await let_go({tp.partition for tp in revoked if tp.topic == t.samples})

    async def before_shutdown(sender: Any, **_: Any) -> None:
        stopping.append(True)
        await let_go(set(emitted) | fed | resuming)

    app.on_partitions_revoked.connect(revoked)  # type: ignore[arg-type]
    app.on_before_shutdown.connect(before_shutdown)  # type: ignore[arg-type]

    async def emit(partition: int, out: StepOutput, pending: list[asyncio.Future[Any]]) -> None:
        already = emitted.get(partition)
        if already is None:  # revoked meanwhile: the next owner sends these
            return
        skip = max(0, min(len(out.aggregates), already - out.first_seq + 1))
        if skip == len(out.aggregates):
            return
        producer: AIOKafkaProducer = app.producer._ensure_producer()  # type: ignore[attr-defined]
        batch = producer.create_batch()
        for i in range(skip, len(out.aggregates)):
            key, value = out.aggregates[i]
            headers = [(SEQ_HEADER, str(out.first_seq + i).encode())]
            if out.tick_after is not None:
                headers.append((TICK_HEADER, str(out.tick_after).encode()))
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                pending.append(await producer.send_batch(batch, t.aggregates, partition=partition))
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None, headers=headers)
        pending.append(await producer.send_batch(batch, t.aggregates, partition=partition))
        if partition in emitted:  # not revoked while sending (the revocation waited for these sends)
            emitted[partition] = out.first_seq + len(out.aggregates) - 1
        observe_window_latency(out.aggregates[skip:], time.time())

    sent: dict[int, list[asyncio.Future[Any]]] = {}
    last_message: dict[int, float] = {}  # partition -> when (monotonic) its last message went through the step
    since_snapshot: dict[int, int] = {}
    last_snapshot: dict[int, float] = {}

    async def newest_snapshots(parts: list[int]) -> dict[int, bytes | None]:
        """The changelog's last record per partition, read through a fetch: Faust's own recovery reads up
        to ListOffsets(latest), which tansu 0.6.0 answers wrongly (DESIGN.md), so it may miss the newest."""
        found = await last_records(cfg.kafka.bootstrap, changelog.get_topic_name(), parts)
        out: dict[int, bytes | None] = {}
        for p in parts:
            last = found[p]
            value = last.value if last is not None and last.value else state.data.get(str(p).encode())
            out[p] = bytes(value) if value is not None else None
        return out

    async def checkpoint(p: int) -> None:
        """Snapshot partition p into the table (aggregates it covers made durable first)."""
        await asyncio.gather(*sent[p])
        if p not in emitted:  # revoked meanwhile: the state may hold windows that were not sent
            return
        key, value = str(p).encode(), step.snapshot(p)
        # What `state[key] = value` does, with the changelog partition named (p, as the input's): snapshots
        # are also written outside Faust's event iteration (replays, batches), where it has no current event.
        state.send_changelog(p, key, value)
        state.data[key] = value
        await app.producer.flush()  # the changelog record durable, alone in its batch
        sent[p], since_snapshot[p], last_snapshot[p] = [], 0, time.monotonic()

    async def handle(p: int, records: list[Record]) -> None:
        """Messages of partition p, next in offset order, through the step as one batch."""
        before = step.samples
        try:
            out = step.process_many(p, [r[:3] for r in records], time.time(), times=[r[3] for r in records])
        except Exception as exc:  # a worker never dies on bad data: dead-letter and go on
            log.exception("window step failed at %s[%d]@%d..%d", t.samples, p, records[0][0], records[-1][0])
            out = StepOutput(first_seq=step.progress[p].seq + 1)
            for offset, key, value, _ in records:
                failed = step.failed(p, offset, key, value, exc, time.time())
                out.deadletters += failed.deadletters
                out.dead += failed.dead
        consumed.inc(step.samples - before)  # counted before any await: other partitions' handle() runs then
        last_message[p] = time.monotonic()
        for reason, n in out.rejected.items():
            SAMPLES_REJECTED.labels(reason).inc(n)
        for reason, n in out.dead.items():
            DEADLETTERS.labels(reason).inc(n)
        if out.aggregates:
            await emit(p, out, sent[p])
        for dl_key, dl_value in out.deadletters:
            await deadletter.send(key=dl_key, value=dl_value)
        since_snapshot[p] += len(records)

    async def catch_up(p: int, stop: int | None, tick_after: int | None = None) -> int:
        """Replay partition p from the samples topic, from its state's next offset up to `stop` (None: the
        partition's end now). Faust's position is not ours: it resumes at its committed offset, which after a
        graceful stop may be past what the state holds, and may jump ahead after its post-recovery seek.
        `tick_after`: an idle close the live run made after that offset and whose snapshot was not written
        is made again there (same input, same windows, same sequence numbers)."""
        n = 0
        if tick_after is not None and tick_after == step.progress[p].offset:
            await quiet_tick(p, force=True)
            tick_after = None
        async for recs in iter_chunks(cfg.kafka.bootstrap, t.samples, p, step.progress[p].offset + 1, stop,
                                      chunk=take):
            if p not in emitted:  # revoked while replaying: the next owner resumes from the snapshot
                break
            records = [_record(rec) for rec in recs]
            cut = len(records) if tick_after is None else sum(r[0] <= tick_after for r in records)
            if cut:
                await handle(p, records[:cut])
            if cut < len(records):
                if tick_after is not None and step.progress[p].offset == tick_after:
                    await quiet_tick(p, force=True)
                    tick_after = None
                await handle(p, records[cut:])
            n += len(recs)
            if since_snapshot[p] >= every_n:
                await checkpoint(p)
        if tick_after is not None and step.progress[p].offset == tick_after and p in emitted:
            await quiet_tick(p, force=True)
        return n

    def caught_up(p: int) -> bool:
        """Whether partition p's state holds everything fetched so far: a backlog is not quiet, whatever the
        wall clock says about its old records."""
        high = feed[0].highwater(TopicPartition(t.samples, p)) if feed else None
        return high is not None and high <= step.progress[p].offset + 1

    async def quiet_tick(p: int, force: bool = False) -> None:
        """Close the windows of partition p's sources if it had no message for `idle_timeout` (this worker's
        clock; `force`: now, a replay making a close again, see `WindowStep.tick`); a close is checkpointed
        before the partition's next message, so at most the last one is missing from a snapshot, and its
        header says where a restart makes it again."""
        if not force and time.monotonic() - last_message.get(p, 0.0) < step.idle_timeout:
            return
        out = step.tick(p)
        if out.aggregates and p in emitted:
            await emit(p, out, sent[p])
            since_snapshot[p] += 1
            await checkpoint(p)

    def assigned() -> set[int]:
        return {tp.partition for tp in app.consumer.assignment() if tp.topic == t.samples}

    def alone() -> bool:
        """Whether this is the only agent reading the samples topic through Faust. Only then is Faust's
        fetching of it paused; otherwise (the anomaly agent scores raw samples) Faust keeps delivering
        them to the others, and this agent ignores its events of the partitions the feed reads."""
        return not any(agent is not windows and t.samples in getattr(agent.channel, "topics", ())
                       for agent in app.agents.values())

    async def resume(parts: list[int]) -> None:
        """Partitions (re)assigned: resume each from its newest snapshot, replay what follows it and hand
        it to the feed (the reads for all of them at once: each costs a round of broker requests). Faust's
        fetching of them is paused first: what it would fetch meanwhile is only dropped."""
        with working(parts):
            await resume_now(parts)

    async def resume_now(parts: list[int]) -> None:
        if alone():
            app.consumer.pause_partitions([TP(t.samples, p) for p in parts])
        resuming.update(parts)
        since = {p: revocations.get(p, 0) for p in parts}
        try:
            snapshots, lasts = await asyncio.gather(newest_snapshots(parts),
                                                    last_records(cfg.kafka.bootstrap, t.aggregates, parts))
            # Not those revoked meanwhile (nor while the worker stops).
            mine = sorted(p for p in set(parts) & assigned() if revocations.get(p, 0) == since[p] and not stopping)
            for p in mine:
                step.restore(p, snapshots[p])
                last = lasts[p]
                emitted[p] = seq_of(last.headers) if last is not None else 0
                sent[p], since_snapshot[p], last_snapshot[p] = [], 0, time.monotonic()
                last_message[p] = time.monotonic()
            offsets = {p: step.progress[p].offset for p in mine}
            ticks = {p: _unsnapshotted_tick(lasts[p], step.progress[p].seq) for p in mine}
            replayed = await asyncio.gather(*(catch_up(p, None, ticks[p]) for p in mine))
            for p, n in zip(mine, replayed, strict=True):
                log.info("windows[%d]: resumed from the snapshot at offset %d, replayed %d messages",
                         p, offsets[p], n)
            if not feed:
                consumer = AIOKafkaConsumer(bootstrap_servers=cfg.kafka.bootstrap, enable_auto_commit=False,
                                            auto_offset_reset="earliest", fetch_max_wait_ms=50,
                                            max_partition_fetch_bytes=8_000_000)
                await consumer.start()
                if feed:  # made meanwhile by another resume
                    await consumer.stop()
                else:
                    feed.append(consumer)
        except BaseException:  # not resumed: Faust's next events of these partitions try again
            for p in parts:
                if p not in fed:
                    emitted.pop(p, None)
            if alone():
                app.consumer.resume_partitions([TP(t.samples, p) for p in parts if p not in fed])
            raise
        finally:
            resuming.difference_update(parts)
        fed.update(p for p in mine if p in emitted)  # not those revoked meanwhile
        refeed()

    async def consume(p: int, messages: list[Any]) -> None:
        """Faust's messages of partition p (in offset order) not yet in the state, in runs of consecutive
        offsets; a gap (Faust skipped ahead of the state) is filled from the samples topic first."""
        run: list[Record] = []
        for msg in messages:
            if p not in emitted or step.applied(p, msg.offset):  # revoked meanwhile, or already in the state
                continue
            expected = (run[-1][0] if run else step.progress[p].offset) + 1
            if msg.offset > expected:
                if run:
                    await handle(p, run)
                    run = []
                await catch_up(p, msg.offset)
                if p not in emitted:
                    return
            run.append(_record(msg))
        if run and p in emitted:
            await handle(p, run)
        if p in emitted and (since_snapshot[p] >= every_n or time.monotonic() - last_snapshot[p] >= every_s):
            await checkpoint(p)

    @app.agent(samples, name="watchkeeper.windows")
    async def windows(stream: faust.StreamT) -> None:
        """Faust's stream only says which partitions are ours: the first events since (re)assignment start
        every assigned partition (resume, then the feed), and Faust's fetching of them is paused. Faust
        resumes fetching after its recovery at a rebalance: such events are dropped and it is paused again."""
        async for events in stream.take_events(take, within=take_within):  # type: ignore[attr-defined]
            new = sorted(assigned() - emitted.keys() - resuming)
            if new and not stopping:
                await resume(new)
            again = {event.message.partition for event in events} & fed
            if again and alone():
                app.consumer.pause_partitions([TP(t.samples, p) for p in again])

    last_tick, last_release = [0.0], [time.monotonic()]

    @app.task
    async def feed_windows() -> None:
        """The data path: our own consumer reads the partitions in `fed` a fetch at a time (Faust's cost per
        message is mostly in its own delivery, before any agent sees the message), and each partition's
        share of a fetch goes through the step as one batch."""
        try:
            while True:
                if not fed:
                    await asyncio.sleep(0.05)
                    continue
                try:
                    got = await feed[0].getmany(timeout_ms=100, max_records=take)
                    for tp, records in got.items():
                        if tp.partition in fed:
                            with working([tp.partition]):
                                await consume(tp.partition, records)
                    now = time.monotonic()
                    for p in list(fed):
                        if p in emitted and since_snapshot[p] and now - last_snapshot[p] >= every_s:
                            with working([p]):
                                await checkpoint(p)
                    if now - last_tick[0] >= TICK_EVERY_SECONDS:
                        last_tick[0] = now
                        for p in list(fed):
                            if p in emitted and caught_up(p) and p not in got_parts(got):
                                with working([p]):
                                    await quiet_tick(p)
                    if now - last_release[0] >= RELEASE_EVERY_SECONDS:
                        last_release[0] = now
                        step.release_series()
                except Exception:  # e.g. the broker away: start over from the snapshots, nothing lost or doubled
                    log.exception("windows: the feed failed; resuming its partitions from their snapshots")
                    await asyncio.sleep(1.0)
                    parts = sorted(fed)
                    for p in parts:  # no await from here to resume()'s first line: the agent cannot interleave
                        fed.discard(p)
                        emitted.pop(p, None)
                        step.forget(p)
                    try:
                        await resume(parts)
                    except Exception:  # left to Faust's next events (resume() on the first of them)
                        log.exception("windows: resuming %s failed; waiting for Faust's next events", parts)
        finally:
            if feed:
                await feed.pop().stop()


def got_parts(got: dict[TopicPartition, list[Any]]) -> set[int]:
    return {tp.partition for tp, records in got.items() if records}


def _record(rec: Any) -> Record:
    """(offset, key, value, processing time): the record's Kafka timestamp (ms) when it has one."""
    ts = rec.timestamp
    return rec.offset, rec.key, rec.value or b"", ts / 1000.0 if ts is not None and ts >= 0 else time.time()


def _unsnapshotted_tick(last: Any, snapshot_seq: int) -> int | None:
    """The offset after which the live run made an idle close that the snapshot does not hold: only the
    last emission can be one (each close is checkpointed before the next message)."""
    if last is None or seq_of(last.headers) <= snapshot_seq:
        return None
    return tick_of(last.headers)
