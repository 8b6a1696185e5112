"""The anomaly agent: `anomaly:` rule groups scored on `wk.aggregates` and/or `wk.samples`; alert state
changes on `wk.alerts` (key = fingerprint, `source: anomaly`). The logic is in `agents.anomaly_step`,
`core.anomaly_scoring` and `core.detectors`; this is the delivery contract:

- Messages are taken in batches (`anomaly.batch_messages` or `anomaly.batch_seconds`), and each
  (rule, series)'s points in a batch are scored in one detector call.
- The state of each (rule, series) (detector, alert, newest point scored) is a bytes value in a plain
  Faust Table, key ``<group>/<alert>\\0<series id>``, on the changelog partition of the input partition the
  series comes from. A checkpoint writes every state changed since the last one, then per partition the
  input offsets they cover; it is taken after every batch that sent alerts (once they are sent) and at
  least every `anomaly.checkpoint_seconds`. Faust restores the table when a partition is (re)assigned;
  what came after the checkpoint is read again and scored again from the checkpointed states, which
  gives the same results (scoring does not depend on batch boundaries) and, since a batch with alert
  transitions is always checkpointed, sends no transition twice.
- Each checkpoint ends, on every partition read since the last one, with a marker record of the last
  input offset applied per input topic. Where the broker has tansu 0.6.0's ListOffsets defect (probed at
  worker start, `runtime.broker_defects`) the marker goes alone in its own producer batch, so
  ListOffsets(latest) (the last batch's base offset + 1) still points past every state record and
  Faust's recovery reads them all.
- Faust's committed offset is never trusted: a worker stopped in the middle of a batch acknowledges the
  batch (Faust's take_events acks in a `finally`), so its committed offset can be past what the table
  holds. A resumed partition is read from its marker (from its beginning when it has none yet): a gap
  before where Faust resumes it is read from the topic first; messages at or before the marker are
  skipped, and so are points at or before a series' newest scored point (states written before a
  marker that was not). A crash between sending a batch's alerts and its checkpoint sends those
  transitions again.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
from aiokafka.errors import KafkaError

from agents.anomaly_step import AnomalyStep, Checkpoint, marker_key
from core.anomaly_rules import AnomalyRule, load_anomaly_files
from core.errors import CoreError
from plumbing.config import Config
from plumbing.errors import RuleFileError
from runtime.partition_log import iter_range
from schemas.topics import DEFAULT_TOPICS

log = logging.getLogger("watchkeeper.anomaly")
STATE_TABLE = "anomaly-state"

__all__ = ["AnomalyConfigError", "load_rules", "register"]


class AnomalyConfigError(RuleFileError):
    """An anomaly rule file the worker cannot run: the message names file, line, group and rule."""


def load_rules(cfg: Config) -> list[AnomalyRule]:
    """Every rule of the configured anomaly files (none configured: an empty list)."""
    try:
        groups = load_anomaly_files([str(cfg.resolve(f)) for f in cfg.anomaly.files])
    except (CoreError, OSError) as exc:
        raise AnomalyConfigError(f"anomaly rule files: {exc}") from None
    return [r for g in groups for r in g.rules]


def register(app: faust.App, cfg: Config) -> None:
    rules = load_rules(cfg)  # AnomalyConfigError stops the worker before it touches Kafka
    if not rules:
        log.info("anomaly: no anomaly rules configured; the anomaly agent is idle")
        return
    t = cfg.kafka.topics
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw",
                           "value_serializer": "raw"}
    kind_of = {t.aggregates: "aggregates", t.samples: "samples"}
    inputs = [name for name, kind in kind_of.items() if any(r.input == kind for r in rules)]
    n = DEFAULT_TOPICS["samples"].partitions  # the inputs and the state table are co-partitioned
    source = app.topic(*inputs, partitions=n, **raw)
    alerts = app.topic(t.alerts, partitions=DEFAULT_TOPICS["alerts"].partitions, **raw)
    changelog = app.topic(f"{app.conf.id}-{STATE_TABLE}-changelog", partitions=n, **raw)
    state = app.Table(STATE_TABLE, partitions=n, key_type=bytes, value_type=bytes, changelog_topic=changelog)
    step = AnomalyStep(rules, load=lambda key: state.data.get(key))
    app.anomaly_step = step  # type: ignore[attr-defined]
    log.info("anomaly: %d rules on %s", len(rules), ", ".join(inputs))

    async def revoked(sender: Any, revoked: set[Any], **_: Any) -> None:
        """Released as the window agent's partitions are (runtime.ownership): no new input on them, the
        batch under way ends (its alerts sent, its checkpoint written) and is durable, then they are
        forgotten; only then does the next owner, once every revocation returned, read the table."""
        parts = {tp.partition for tp in revoked if tp.topic in kind_of}
        step.revoke(parts)
        await step.own.quiesce(parts)
        await app.producer.flush()
        step.forget(parts)

    async def assigned(sender: Any, assigned: set[Any], **_: Any) -> None:
        step.assigned({tp.partition for tp in assigned if tp.topic in kind_of})

    app.on_partitions_revoked.connect(revoked)  # type: ignore[arg-type]
    app.on_partitions_assigned.connect(assigned)  # type: ignore[arg-type]
    last_checkpoint = time.monotonic()

    async def checkpoint(cp: Checkpoint) -> None:
        """The states, then per partition its offsets marker, alone in the partition's last batch where the
        broker has the ListOffsets defect (runtime.broker_defects)."""
        for partition, states in cp.states.items():
            for key, value in states.items():
                state.data[key] = value
                state.send_changelog(partition, key, value)
        if (await app.broker_defects.get()).list_offsets_latest:  # type: ignore[attr-defined]
            await app.producer.flush()
        for partition, marker in cp.markers.items():
            state.data[marker_key(partition)] = marker
            state.send_changelog(partition, marker_key(partition), marker)
        await app.producer.flush()

    async def publish(events: list[tuple[bytes, bytes]]) -> None:
        nonlocal last_checkpoint
        for key, value in events:
            await alerts.send(key=key, value=value)
        if events or time.monotonic() - last_checkpoint >= cfg.anomaly.checkpoint_seconds:
            cp = step.checkpoint()
            if cp:
                await checkpoint(cp)
            last_checkpoint = time.monotonic()

    async def fill_gap(topic: str, partition: int, offset: int) -> None:
        """Read what lies between the partition's checkpoint and where Faust resumed it."""
        gap = step.gap(topic, partition, offset)
        if gap is None:
            return
        log.info("anomaly: %s[%d] resumes at %d, past its checkpoint: reading %d.. first", topic, partition,
                 offset, gap[0])
        try:
            n = 0
            async for rec in iter_range(cfg.kafka.bootstrap, topic, partition, gap[0], gap[1]):
                step.add(kind_of[topic], topic, partition, rec.offset, rec.key, rec.value or b"")
                n += 1
                if n % cfg.anomaly.batch_messages == 0:  # a long gap is scored as it is read
                    await publish(step.flush().records)
        except (TimeoutError, KafkaError):  # the series miss those points; the worker goes on
            log.exception("anomaly: could not read %s[%d] %d..%d", topic, partition, gap[0], gap[1])

    @app.agent(source, name="watchkeeper.anomaly")
    async def anomaly(stream: faust.StreamT) -> None:
        # take_events (not in StreamT's stubs) keeps each event, for its topic, partition and offset.
        batches = stream.take_events(cfg.anomaly.batch_messages, within=cfg.anomaly.batch_seconds)  # type: ignore[attr-defined]
        async for events in batches:
            with step.own.work({event.message.partition for event in events}):
                await take(events)

    async def take(events: list[Any]) -> None:
        """One batch: each event applied (resuming its partition on its first event since assignment), then
        the batch scored, its alerts sent and, when due, checkpointed."""
        for event in events:
            msg = event.message
            if step.taken_away(msg.partition):  # taken away while it waited in the batch
                continue
            if not step.resumed(msg.partition):  # first event since (re)assignment
                step.resume(msg.partition, state.data.get(marker_key(msg.partition)))
            await fill_gap(msg.topic, msg.partition, msg.offset)
            step.add(kind_of[msg.topic], msg.topic, msg.partition, msg.offset, msg.key, msg.value or b"")
        await publish(step.flush().records)
