"""The rules agent: Prometheus rule files evaluated on `wk.samples` in event time; alert state changes
on `wk.alerts` (key = fingerprint), recording-rule results back on `wk.samples` (key ``rules/<group>``).

Delivery contract (the logic is in `agents.rules_step`, the rule engine in `core.rules`):
- Every process reads *every* partition of the samples topic (manual assignment, no consumer group):
  a rule such as ``sum by (job) (...)`` needs the samples of all sources.
- Rule groups are cut into units (`core.rule_units`: groups that read what another records stay
  together) and units are hashed onto the partitions of ``<app_id>-rule-shards``. The processes share
  those partitions through a consumer group ``<app_id>-rules``; a process evaluates the units of the
  shards it owns. With one process it owns them all.
- Each owned shard is checkpointed on ``<app_id>-rule-state`` (partition = shard): the units' engine
  snapshots, the offsets of their own recorded output, and per samples partition where a replay must
  start. Checkpoints are written after every step that sent alerts (once those are acknowledged), every
  `rules.checkpoint_seconds`, when a shard is revoked and at shutdown; the next owner resumes from the
  newest one, so a restart or a rebalance neither loses nor repeats an alert transition (a crash between
  an alert's acknowledgement and the checkpoint after it can repeat that step's transitions).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.structs import TopicPartition

from watchkeeper.agents.rule_failure_report import RuleFailureReport
from watchkeeper.agents.rules_ingest import Mark
from watchkeeper.agents.rules_step import Checkpoint, RulesStep, UnitOutput, decode_or_none, start_marks
from watchkeeper.agents.rules_wiring import RulesConfigError, load_rules
from watchkeeper.plumbing import kafka_clients
from watchkeeper.plumbing.config import Config
from watchkeeper.plumbing.self_metrics import RULES_SAMPLES_REJECTED
from watchkeeper.plumbing.topics import ensure_topics
from watchkeeper.runtime.ownership import Event, Ownership, Phase
from watchkeeper.runtime.partition_log import last_records

log = logging.getLogger("watchkeeper.rules")

# Partitions more than this far (event time) ahead of the watermark are paused while the others catch up.
AHEAD_SLACK = 120.0

__all__ = ["RulesConfigError", "RulesRunner", "register", "rule_topics"]


def rule_topics(cfg: Config) -> tuple[str, str, str]:
    """(shards topic, checkpoint topic, consumer group) of this app."""
    app_id = cfg.worker.app_id
    return f"{app_id}-rule-shards", f"{app_id}-rule-state", f"{app_id}-rules"


def register(app: faust.App, cfg: Config) -> None:
    loaded = load_rules(cfg)  # RulesConfigError (file, line, group, rule) stops the worker
    if loaded is None:
        log.info("rules: no rule files configured; the rules agent is idle")
        return
    runner = RulesRunner(cfg, loaded.step_factory)
    app.rules_runner = runner  # type: ignore[attr-defined]

    @app.task
    async def rules() -> None:
        await runner.run()


class RulesRunner:
    """Reads the samples topic, owns rule shards, advances and publishes. One per worker process."""

    def __init__(self, cfg: Config, step_factory: Callable[[str], RulesStep]) -> None:
        self.cfg = cfg
        self.shards_topic, self.state_topic, self.group_id = rule_topics(cfg)
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.step: RulesStep = step_factory(self.owner)
        self.failures = RuleFailureReport(cfg.data_path, self.owner)
        self.lock = asyncio.Lock()
        self.started = asyncio.Event()
        self.alerts_sent = 0
        self.recorded_sent = 0
        self.checkpoints_written = 0
        self._last_checkpoint = 0.0
        self._producer: AIOKafkaProducer | None = None
        self._written: dict[int, bytes] = {}  # shard -> the newest checkpoint this process wrote for it
        self._rewind: dict[int, Mark] = {}  # seek the reader here (the store was reset for a takeover)
        # Each shard's lifecycle (runtime.ownership, as the window and anomaly agents'): the lock is the work
        # under way, so a revocation waits for the step that is advancing.
        self.shard_own = Ownership()
        self.rewinds = 0
        self._rejected_exported: dict[str, int] = {}  # step.rejected() already added to /metrics

    async def run(self) -> None:
        cfg, step = self.cfg, self.step
        bootstrap, t = cfg.kafka.bootstrap, cfg.kafka.topics
        n = step.shards
        await ensure_topics(bootstrap, {self.shards_topic: n, self.state_topic: n}, cfg.kafka.replication_factor)
        found = await last_records(bootstrap, self.state_topic, list(range(n)))
        checkpoints = {s: cp for s, rec in found.items() if rec is not None and (cp := decode_or_none(rec.value))}
        producer = self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5,
                                                     max_request_size=4 * 1024 * 1024, acks="all")
        reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                  auto_offset_reset="earliest", fetch_max_wait_ms=100,
                                  max_partition_fetch_bytes=4 * 1024 * 1024)
        session_ms = int(cfg.kafka.session_timeout * 1000)
        shards = kafka_clients.group_consumer(cfg.kafka, group_id=self.group_id,
                                              rebalance_timeout_ms=max(session_ms, 30_000))
        await producer.start()
        await reader.start()
        keepalive: asyncio.Task[None] | None = None
        try:
            partitions = await self._partitions(reader, t.samples)
            tps = [TopicPartition(t.samples, p) for p in partitions]
            reader.assign(tps)
            for p, mark in start_marks(partitions, step.units, checkpoints).items():
                step.start(p, mark)
                reader.seek(TopicPartition(t.samples, p), mark.offset)
            log.info("rules: %d units over %d shards; reading %s from offsets %s", len(step.units), n,
                     t.samples, {p: step.clocks[p].next_offset for p in partitions})
            shards.subscribe([self.shards_topic], listener=_ShardListener(self))
            await shards.start()
            keepalive = asyncio.create_task(_keep_polling(shards))
            self.started.set()
            paused: set[int] = set()
            while True:
                batch = await reader.getmany(timeout_ms=200, max_records=5000)
                if self._rewind:
                    for p, mark in self._rewind.items():
                        reader.seek(TopicPartition(t.samples, p), mark.offset)
                    self._rewind = {}
                    continue  # what was fetched before the seek is read again
                for tp in tps:
                    high = reader.highwater(tp)
                    if high is not None:
                        step.seen_end(tp.partition, high)
                for tp, records in batch.items():
                    for rec in records:
                        try:
                            ms = rec.timestamp  # processing time; none: no future bound for this one
                            now = ms / 1000 if ms is not None and ms >= 0 else None
                            step.ingest(tp.partition, rec.offset, rec.key, rec.value or b"", now)
                        except Exception:  # a worker never dies on bad data
                            step.bad += 1
                            log.exception("rules: could not read %s[%d]@%d", t.samples, tp.partition, rec.offset)
                async with self.lock:
                    await self._advance()
                ahead = set(step.ahead(AHEAD_SLACK))
                if ahead != paused:
                    reader.resume(*[TopicPartition(t.samples, p) for p in paused - ahead])
                    reader.pause(*[TopicPartition(t.samples, p) for p in ahead - paused])
                    paused = ahead
        finally:
            if keepalive is not None:
                keepalive.cancel()
            with contextlib.suppress(Exception):
                async with self.lock:
                    for s in list(step.owned):
                        await self._checkpoint(s)
            for client in (shards, reader, producer):
                with contextlib.suppress(Exception):
                    await client.stop()

    @staticmethod
    async def _partitions(reader: AIOKafkaConsumer, topic: str) -> list[int]:
        for _ in range(100):
            found = reader.partitions_for_topic(topic)
            if found:
                return sorted(found)
            await reader.topics()
            await asyncio.sleep(0.1)
        raise RuntimeError(f"topic {topic} has no partitions (create it first: watchkeeper up or worker)")

    async def _advance(self) -> None:
        outputs = self.step.advance()
        self.failures.report(self.step.take_failures())
        export_rejected(self.step, self._rejected_exported)
        if outputs:
            await self._publish(outputs)
        now = time.monotonic()
        if any(o.alerts for o in outputs) or now - self._last_checkpoint >= self.cfg.rules.checkpoint_seconds:
            for s in list(self.step.owned):
                await self._checkpoint(s)
            self.step.prune_marks()
            self._last_checkpoint = now
            self.failures.publish()

    async def _publish(self, outputs: list[UnitOutput]) -> None:
        assert self._producer is not None
        t = self.cfg.kafka.topics
        sent: list[tuple[str | None, asyncio.Future[Any]]] = []
        for out in outputs:
            for key, value in out.alerts:
                sent.append((None, await self._producer.send(t.alerts, value, key=key)))
            for key, value in out.recorded:
                sent.append((out.unit.key, await self._producer.send(t.samples, value, key=key)))
            if out.dropped:
                log.debug("rules: %d non-finite recorded values of %s kept local", out.dropped, out.unit.key)
        for unit_key, fut in sent:
            meta = await fut
            if unit_key is None:
                self.alerts_sent += 1
            else:
                self.recorded_sent += 1
                self.step.produced(unit_key, meta.partition, meta.offset)

    async def _checkpoint(self, shard: int) -> None:
        """Write the shard's checkpoint unless the newest one this process wrote says the same already
        (an idle stream writes nothing)."""
        assert self._producer is not None
        cp: Checkpoint = self.step.checkpoint(shard)
        value = cp.encode()
        if self._written.get(shard) == value:
            return
        await self._producer.send_and_wait(self.state_topic, value, key=str(shard).encode(), partition=shard)
        self._written[shard] = value
        self.checkpoints_written += 1

    async def assigned(self, shards: list[int]) -> None:
        for s in shards:
            self.shard_own.transition(s, Event.ASSIGN)
        async with self.lock:
            shards = self.shard_own.in_phase(Phase.ASSIGNED)
            for s in shards:
                self.shard_own.transition(s, Event.RESUME)
            try:
                found = await last_records(self.cfg.kafka.bootstrap, self.state_topic, shards)
            except BaseException:  # left ASSIGNED: the next assignment resumes them
                for s in shards:
                    if self.shard_own.phase(s) is Phase.RESUMING:
                        self.shard_own.transition(s, Event.FAILED)
                raise
            checkpoints = {s: decode_or_none(rec.value) if rec is not None else None for s, rec in found.items()}
            behind = [cp for cp in checkpoints.values() if cp is not None and cp.units and not self.step.covers(cp)]
            if behind:
                # The previous owner stopped further back than this store reaches: read the history again.
                marks = {p: min((cp.replay[p] for cp in behind if p in cp.replay), key=lambda m: m.offset,
                                default=Mark(0, -math.inf, -math.inf)) for p in self.step.clocks}
                log.warning("rules: taking over shards at watermark %s, behind this store (from %s): "
                            "re-reading %s from offsets %s", min(cp.watermark for cp in behind),
                            self.step.history_floor(), self.cfg.kafka.topics.samples,
                            {p: m.offset for p, m in marks.items()})
                self.step.rewind(marks)
                self._rewind = marks
                self.rewinds += 1
            for s in shards:
                if self.shard_own.phase(s) is not Phase.RESUMING:  # revoked meanwhile
                    continue
                self.step.own(s, checkpoints.get(s))
                self._written.pop(s, None)
                self.shard_own.transition(s, Event.RESUMED)
            log.info("rules: %s owns shards %s (units %s)", self.owner, sorted(self.step.owned),
                     self.step.owned_units())

    async def revoked(self, shards: list[int]) -> None:
        for s in shards:
            self.shard_own.transition(s, Event.REVOKE)
        async with self.lock:
            for s in shards:
                if s in self.step.owned:
                    await self._checkpoint(s)
                    self.step.release(s)
                self._written.pop(s, None)
                if self.shard_own.phase(s) is Phase.RELEASING:
                    self.shard_own.transition(s, Event.RELEASED)


class _ShardListener(ConsumerRebalanceListener):
    def __init__(self, runner: RulesRunner) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.runner.revoked(sorted(tp.partition for tp in revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.runner.assigned(sorted(tp.partition for tp in assigned))


async def _keep_polling(consumer: AIOKafkaConsumer) -> None:
    """The shards topic carries no records; polling keeps the group membership and rebalances moving."""
    while True:
        await consumer.getmany(timeout_ms=1000)


def export_rejected(step: RulesStep, exported: dict[str, int]) -> None:
    """Add what `step.rejected()` counted since the last call (`exported`, updated) to
    `watchkeeper_rules_samples_rejected_total`."""
    for reason, n in step.rejected().items():
        delta = n - exported.get(reason, 0)
        if delta > 0:
            RULES_SAMPLES_REJECTED.labels(reason).inc(delta)
            exported[reason] = n
