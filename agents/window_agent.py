"""The window agent: `wk.samples` -> closed windows on `wk.aggregates`, bad and late input on
`wk.deadletter`. The logic is in `agents.window_step` and `core.windows`; this is the delivery contract:

- State per input partition p is a snapshot (engine, last applied offset, emission count) in a plain
  Faust Table (bytes values, key = p), written every `snapshot_every_messages` messages or
  `snapshot_every_seconds` of p, after the aggregates it covers are durable. On (re)assignment the
  newest snapshot is read from the changelog's last record (end from a fetch's high watermark, not
  ListOffsets, which tansu 0.6.0 answers wrongly); then everything after it, up to the partition's end, is
  read back from the samples topic and replayed, and Faust's events it already holds are skipped. Faust's
  committed offset is never trusted: after a graceful stop it can be past what the snapshot holds.
- Each changelog record is flushed alone, in its own batch, so Faust's own recovery (which reads up to
  ListOffsets(latest) = the last batch's base offset + 1 on tansu) also sees the newest snapshot.
- Windows of input partition p go to aggregates partition p, numbered by a per-partition sequence
  header (`wk-seq`). Replay is deterministic, so on (re)assignment the last number on aggregates p says
  which replayed windows were already sent: those are not sent again. Every window once, exactly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust
from aiokafka import AIOKafkaProducer

from agents.emission_log import SEQ_HEADER, iter_range, last_records, seq_of
from agents.window_step import StepOutput, WindowStep
from agents.worker_metrics import observe_window_latency, register_lag_timer
from watchkeeper.config import Config
from watchkeeper.self_metrics import SAMPLES_CONSUMED

log = logging.getLogger("watchkeeper.windows")
STATE_TABLE = "window-state"


def register(app: faust.App, cfg: Config) -> None:
    t = cfg.kafka.topics
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw",
                           "value_serializer": "raw"}
    samples = app.topic(t.samples, partitions=8, **raw)
    deadletter = app.topic(t.deadletter, partitions=1, **raw)
    changelog = app.topic(f"{app.conf.id}-{STATE_TABLE}-changelog", partitions=8, **raw)
    state = app.Table(STATE_TABLE, partitions=8, key_type=bytes, value_type=bytes, changelog_topic=changelog)
    step = WindowStep(t.samples, cfg.windows.width, cfg.windows.allowed_lateness)
    app.window_step = step  # type: ignore[attr-defined]
    consumed = SAMPLES_CONSUMED.labels(t.samples)
    register_lag_timer(app, t.samples, step.progress)
    emitted: dict[int, int] = {}  # partition -> last sequence number already on aggregates (this assignment)
    every_n, every_s = cfg.windows.snapshot_every_messages, cfg.windows.snapshot_every_seconds

    async def revoked(sender: Any, revoked: set[Any], **_: Any) -> None:
        for tp in revoked:
            if tp.topic == t.samples:
                step.forget(tp.partition)
                emitted.pop(tp.partition, None)

    app.on_partitions_revoked.connect(revoked)  # type: ignore[arg-type]

    async def emit(partition: int, out: StepOutput, pending: list[asyncio.Future[Any]]) -> None:
        already = emitted[partition]
        skip = max(0, min(len(out.aggregates), already - out.first_seq + 1))
        if skip == len(out.aggregates):
            return
        producer: AIOKafkaProducer = app.producer._ensure_producer()  # type: ignore[attr-defined]
        batch = producer.create_batch()
        for i in range(skip, len(out.aggregates)):
            key, value = out.aggregates[i]
            headers = [(SEQ_HEADER, str(out.first_seq + i).encode())]
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                pending.append(await producer.send_batch(batch, t.aggregates, partition=partition))
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None, headers=headers)
        pending.append(await producer.send_batch(batch, t.aggregates, partition=partition))
        emitted[partition] = out.first_seq + len(out.aggregates) - 1
        observe_window_latency(out.aggregates[skip:], time.time())

    sent: dict[int, list[asyncio.Future[Any]]] = {}
    since_snapshot: dict[int, int] = {}
    last_snapshot: dict[int, float] = {}

    async def newest_snapshot(p: int) -> bytes | None:
        """The changelog's last record for p, read through a fetch: Faust's own recovery reads up to
        ListOffsets(latest), which tansu 0.6.0 answers wrongly (DESIGN.md), so it may miss the newest."""
        last = (await last_records(cfg.kafka.bootstrap, changelog.get_topic_name(), [p]))[p]
        if last is not None and last.value:
            return bytes(last.value)
        value = state.data.get(str(p).encode())
        return bytes(value) if value is not None else None

    async def checkpoint(p: int) -> None:
        """Snapshot partition p into the table (aggregates it covers made durable first)."""
        await asyncio.gather(*sent[p])
        key, value = str(p).encode(), step.snapshot(p)
        state[key] = value
        await app.producer.flush()  # the changelog record durable, alone in its batch
        sent[p], since_snapshot[p], last_snapshot[p] = [], 0, time.monotonic()

    async def handle(p: int, offset: int, key: bytes | None, value: bytes | None) -> None:
        before = step.samples
        try:
            out = step.process(p, offset, key, value or b"", time.time())
        except Exception as exc:  # a worker never dies on bad data: dead-letter and go on
            log.exception("window step failed at %s[%d]@%d", t.samples, p, offset)
            out = step.failed(p, offset, key, value or b"", exc, time.time())
        if out.aggregates:
            await emit(p, out, sent[p])
        for dl_key, dl_value in out.deadletters:
            await deadletter.send(key=dl_key, value=dl_value)
        since_snapshot[p] += 1
        consumed.inc(step.samples - before)

    async def catch_up(p: int, stop: int | None) -> int:
        """Replay partition p from the samples topic, from its state's next offset up to `stop` (None: the
        partition's end now). Faust's position is not ours: it resumes at its committed offset, which after a
        graceful stop may be past what the state holds, and may jump ahead after its post-recovery seek."""
        n = 0
        async for rec in iter_range(cfg.kafka.bootstrap, t.samples, p, step.progress[p].offset + 1, stop):
            if p not in emitted:  # revoked while replaying: the next owner resumes from the snapshot
                break
            await handle(p, rec.offset, rec.key, rec.value)
            n += 1
            if since_snapshot[p] >= every_n:
                await checkpoint(p)
        return n

    @app.agent(samples, name="watchkeeper.windows")
    async def windows(stream: faust.StreamT) -> None:
        async for event in stream.events():
            msg = event.message
            p = msg.partition
            if p not in emitted:  # first event since (re)assignment: resume from the newest snapshot
                step.restore(p, await newest_snapshot(p))
                last = (await last_records(cfg.kafka.bootstrap, t.aggregates, [p]))[p]
                emitted[p] = seq_of(last.headers) if last is not None else 0
                sent[p], since_snapshot[p], last_snapshot[p] = [], 0, time.monotonic()
                resume = step.progress[p].offset
                replayed = await catch_up(p, None)
                log.info("windows[%d]: resumed from the snapshot at offset %d, replayed %d messages",
                         p, resume, replayed)
            if p not in emitted or step.applied(p, msg.offset):  # revoked meanwhile, or already in the state
                continue
            if msg.offset > step.progress[p].offset + 1:  # Faust skipped ahead of the state: fill the gap
                await catch_up(p, msg.offset)
                if p not in emitted:
                    continue
            await handle(p, msg.offset, msg.key, msg.value)
            if since_snapshot[p] >= every_n or time.monotonic() - last_snapshot[p] >= every_s:
                await checkpoint(p)
