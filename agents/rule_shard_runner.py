"""The part of a rules runner that does not depend on what it reads: one reader over every partition of an
input topic, rule shards owned through the consumer group ``<app_id>-rules`` (partitions of
``<app_id>-rule-shards``), the step advanced after each fetch, its alerts and recorded samples published,
and each owned shard checkpointed on ``<app_id>-rule-state`` (after every step that sent alerts, once those
are acknowledged; every `rules.checkpoint_seconds`; when a shard is revoked; at shutdown).

`agents.rules_agent.RulesRunner` (full mode: reads the samples) and `agents.rules_merge_agent.RulesMergeRunner`
(partitioned mode's merge stage: reads the partials) bring their step and the hooks that differ.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.structs import TopicPartition

from watchkeeper.agents.rule_failure_report import RuleFailureReport
from watchkeeper.agents.rules_step import UnitOutput
from watchkeeper.agents.rules_wiring import RulesAgentSettings
from watchkeeper.core.rules.eval_failures import EvalFailure
from watchkeeper.plumbing import kafka_clients
from watchkeeper.plumbing.topics import ensure_topics
from watchkeeper.runtime.ownership import Event, Ownership, Phase
from watchkeeper.runtime.partition_log import last_records

log = logging.getLogger("watchkeeper.rules")

# A piece of work between two turns of the event loop: bytes of input read, seconds of evaluation (a tick
# already started is finished, so one piece may be longer).
PIECE_BYTES = 1_000_000
PIECE_SECONDS = 0.1


def rule_topics(app_id: str) -> tuple[str, str, str]:
    """(shards topic, checkpoint topic, consumer group) of the app `app_id`."""
    return f"{app_id}-rule-shards", f"{app_id}-rule-state", f"{app_id}-rules"


class _Encodable(Protocol):
    def encode(self) -> bytes: ...


class RunnerStep(Protocol):
    """What the runner needs of a step."""

    shards: int
    bad: int
    behind: bool  # the last `advance` stopped at `more` with work left

    @property
    def owned(self) -> Any: ...
    def advance(self, more: Callable[[], bool] | None = None) -> list[UnitOutput]: ...
    def take_failures(self) -> list[EvalFailure]: ...
    def checkpoint(self, shard: int) -> Any: ...
    def produced(self, unit_key: str, partition: int, offset: int) -> None: ...
    def release(self, shard: int) -> None: ...
    def owned_units(self) -> Sequence[str]: ...


S = TypeVar("S", bound=RunnerStep)


class ShardedRuleRunner(Generic[S]):
    """Reads an input topic (every partition), owns rule shards through the consumer group, advances the
    step, publishes its output and checkpoints each owned shard. The full mode's `RulesRunner` and the
    merge stage's `RulesMergeRunner` are this with their own step and input."""

    def __init__(self, cfg: RulesAgentSettings, step_factory: Callable[[str], S]) -> None:
        self.cfg = cfg
        self.shards_topic, self.state_topic, self.group_id = rule_topics(cfg.app_id)
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.step: S = step_factory(self.owner)
        self.failures = RuleFailureReport(cfg.data_path, self.owner)
        self.lock = asyncio.Lock()
        self.started = asyncio.Event()
        self.alerts_sent = 0
        self.recorded_sent = 0
        self.checkpoints_written = 0
        self._last_checkpoint = 0.0
        self._producer: AIOKafkaProducer | None = None
        self._written: dict[int, bytes] = {}  # shard -> the newest checkpoint this process wrote for it
        self._rewind: dict[int, int] = {}  # seek the reader here (the store was reset for a takeover)
        # Each shard's lifecycle (runtime.ownership, as the window and anomaly agents'): the lock is the work
        # under way, so a revocation waits for the step that is advancing.
        self.shard_own = Ownership()
        self.rewinds = 0

    input_name = "samples"  # the topic this runner reads: cfg.kafka.topics.<input_name>

    def decode(self, raw: bytes | None) -> Any:
        """A shard's checkpoint, or None (unreadable: the shard starts fresh)."""
        raise NotImplementedError

    async def run(self) -> None:
        cfg, step = self.cfg, self.step
        bootstrap = cfg.kafka.bootstrap
        n = step.shards
        await ensure_topics(bootstrap, {self.shards_topic: n, self.state_topic: n}, cfg.kafka.replication_factor)
        found = await last_records(bootstrap, self.state_topic, list(range(n)))
        checkpoints = {s: cp for s, rec in found.items() if rec is not None and (cp := self.decode(rec.value))}
        producer = self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5,
                                                     max_request_size=4 * 1024 * 1024, acks="all")
        reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                  auto_offset_reset="earliest", fetch_max_wait_ms=100,
                                  max_partition_fetch_bytes=4 * 1024 * 1024)
        session_ms = int(cfg.kafka.session_timeout * 1000)
        shards = kafka_clients.group_consumer(cfg.kafka, group_id=self.group_id,
                                              rebalance_timeout_ms=max(session_ms, 30_000))
        topic = await self._input_topic()  # before the reader starts: its metadata then knows the topic
        await producer.start()
        await reader.start()
        keepalive: asyncio.Task[None] | None = None
        try:
            partitions = await self._partitions(reader, topic)
            tps = [TopicPartition(topic, p) for p in partitions]
            reader.assign(tps)
            for p, offset in self._start(partitions, checkpoints).items():
                reader.seek(TopicPartition(topic, p), offset)
            shards.subscribe([self.shards_topic], listener=_ShardListener(self))
            await shards.start()
            keepalive = asyncio.create_task(_keep_polling(shards))
            self.started.set()
            while True:
                batch = await reader.getmany(timeout_ms=200, max_records=5000)
                if self._rewind:
                    rewind, self._rewind = self._rewind, {}
                    for p, offset in rewind.items():
                        reader.seek(TopicPartition(topic, p), offset)
                    # What was fetched of a rewound partition is read again after the seek; the rest of the
                    # batch is read now (the reader's position is already past it: dropping it lost it).
                    batch = {tp: recs for tp, recs in batch.items() if tp.partition not in rewind}
                self._fetched(reader, tps)
                async with self.lock:  # held while reading: an assignment's rewind must not land inside a batch
                    await self._read(topic, batch)
                while True:  # the lock is let go between pieces: a revocation waits for one piece, not all
                    async with self.lock:
                        behind = await self._advance()
                    await asyncio.sleep(0)
                    if not behind:
                        break
                self._advanced(reader, topic)
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

    async def _input_topic(self) -> str:
        return str(getattr(self.cfg.kafka.topics, self.input_name))

    def _start(self, partitions: list[int], checkpoints: dict[int, Any]) -> dict[int, int]:
        """Position every input partition for the checkpoints found: partition -> offset to read from."""
        raise NotImplementedError

    def _fetched(self, reader: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
        """After each fetch, before its records are read."""

    def _ingest(self, partition: int, rec: Any) -> None:
        raise NotImplementedError

    def _advanced(self, reader: AIOKafkaConsumer, topic: str) -> None:
        """After each advance (outside the lock)."""

    @staticmethod
    async def _partitions(reader: AIOKafkaConsumer, topic: str) -> list[int]:
        for _ in range(100):
            found = reader.partitions_for_topic(topic)
            if found:
                return sorted(found)
            await reader.topics()
            await asyncio.sleep(0.1)
        raise RuntimeError(f"topic {topic} has no partitions (create it first: watchkeeper up or worker)")

    async def _read(self, topic: str, batch: dict[TopicPartition, list[Any]]) -> None:
        """A fetch's records into the step, the event loop getting a turn after every `PIECE_BYTES` of
        values: a fetch answered from the reader's buffer never suspends, so a backlog read without turns
        held the loop for seconds (heartbeats missed, bench/rules/RESULTS.md)."""
        step, held = self.step, 0
        for tp, records in batch.items():
            for rec in records:
                try:
                    self._ingest(tp.partition, rec)
                except Exception:  # a worker never dies on bad data
                    step.bad += 1
                    log.exception("rules: could not read %s[%d]@%d", topic, tp.partition, rec.offset)
                held += len(rec.value or b"")
                if held >= PIECE_BYTES:
                    held = 0
                    await asyncio.sleep(0)

    async def _advance(self) -> bool:
        """One bounded piece of evaluation (about `PIECE_SECONDS`), its output published and checkpointed
        as before the cut; returns whether the step has complete ticks left."""
        deadline = time.monotonic() + PIECE_SECONDS
        outputs = self.step.advance(lambda: time.monotonic() < deadline)
        self.failures.report(self.step.take_failures())
        self._stepped()
        if outputs:
            await self._publish(outputs)
        now = time.monotonic()
        if any(o.alerts for o in outputs) or now - self._last_checkpoint >= self.cfg.rules.checkpoint_seconds:
            for s in list(self.step.owned):
                await self._checkpoint(s)
            self._checkpointed()
            self._last_checkpoint = now
            self.failures.publish()
        return self.step.behind

    def _stepped(self) -> None:
        """After each advance, before its output is published."""

    def _checkpointed(self) -> None:
        """After the owned shards were checkpointed."""

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
        cp = self.step.checkpoint(shard)
        value = cp.encode()
        if self._written.get(shard) == value:
            return
        await self._producer.send_and_wait(self.state_topic, value, key=str(shard).encode(), partition=shard)
        self._written[shard] = value
        self.checkpoints_written += 1

    async def assigned(self, shards: list[int]) -> None:
        """Own these shards (their newest checkpoints read); the lock held while the step changes."""
        raise NotImplementedError

    async def _resuming(self, shards: list[int]) -> tuple[list[int], dict[int, Any]]:
        """With the lock held: the assigned shards moved to RESUMING, and the newest record of each on the
        checkpoint topic (None: none). A failure leaves them ASSIGNED: the next assignment resumes them."""
        shards = self.shard_own.in_phase(Phase.ASSIGNED)
        for s in shards:
            self.shard_own.transition(s, Event.RESUME)
        try:
            return shards, await last_records(self.cfg.kafka.bootstrap, self.state_topic, shards)
        except BaseException:
            for s in shards:
                if self.shard_own.phase(s) is Phase.RESUMING:
                    self.shard_own.transition(s, Event.FAILED)
            raise

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
    def __init__(self, runner: ShardedRuleRunner[Any]) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.runner.revoked(sorted(tp.partition for tp in revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.runner.assigned(sorted(tp.partition for tp in assigned))


async def _keep_polling(consumer: AIOKafkaConsumer) -> None:
    """The shards topic carries no records; polling keeps the group membership and rebalances moving."""
    while True:
        await consumer.getmany(timeout_ms=1000)


