"""The window agent: `wk.samples` -> closed windows on `wk.aggregates`, bad and late input on
`wk.deadletter`. The logic is in `agents.window_step` and `core.windows`; this is the delivery contract:

- State per input partition p is a snapshot (engine, last applied offset, emission count) in a plain
  Faust Table (bytes values, key = p), written every `snapshot_every_messages` messages or
  `snapshot_every_seconds` of p. Input events are acked only once a snapshot covering them is durable,
  so the committed offset never passes the snapshot; after a restart, messages the snapshot already
  holds are skipped and later ones replayed.
- Each changelog record is flushed alone, in its own batch: tansu's ListOffsets(latest) is the last
  batch's base offset + 1, so Faust's recovery would miss the last records of a multi-record batch.
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

from agents.emission_log import SEQ_HEADER, last_sequences
from agents.window_step import StepOutput, WindowStep
from watchkeeper.config import Config

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

    @app.agent(samples, name="watchkeeper.windows")
    async def windows(stream: faust.StreamT) -> None:
        manual = stream.noack()  # type: ignore[attr-defined]
        unacked: dict[int, list[Any]] = {}
        sent: dict[int, list[asyncio.Future[Any]]] = {}
        last_snapshot: dict[int, float] = {}
        async for event in manual.events():
            msg = event.message
            p = msg.partition
            if p not in emitted:  # first event since (re)assignment: resume from the table
                step.restore(p, state.get(str(p).encode()))
                emitted[p] = (await last_sequences(cfg.kafka.bootstrap, t.aggregates, [p]))[p]
                unacked[p], sent[p], last_snapshot[p] = [], [], time.monotonic()
            if step.applied(p, msg.offset):
                await manual.ack(event)
                continue
            try:
                out = step.process(p, msg.offset, msg.key, msg.value, time.time())
            except Exception as exc:  # a worker never dies on bad data: dead-letter and go on
                log.exception("window step failed at %s[%d]@%d", msg.topic, p, msg.offset)
                out = step.failed(p, msg.offset, msg.key, msg.value or b"", exc, time.time())
            if out.aggregates:
                await emit(p, out, sent[p])
            for dl_key, dl_value in out.deadletters:
                await deadletter.send(key=dl_key, value=dl_value)
            unacked[p].append(event)
            if len(unacked[p]) >= every_n or time.monotonic() - last_snapshot[p] >= every_s:
                # Aggregates first: the snapshot says they were sent.
                await asyncio.gather(*sent[p])
                state[str(p).encode()] = step.snapshot(p)
                await app.producer.flush()  # the changelog record durable, alone in its batch
                for e in unacked[p]:
                    await manual.ack(e)
                unacked[p], sent[p], last_snapshot[p] = [], [], time.monotonic()
