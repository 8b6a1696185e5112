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

import logging
import math
from collections.abc import Callable
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from watchkeeper.agents.rule_shard_runner import ShardedRuleRunner, rule_topics
from watchkeeper.agents.rules_ingest import Mark
from watchkeeper.agents.rules_merge_agent import register_merge
from watchkeeper.agents.rules_partial_agent import register_partial
from watchkeeper.agents.rules_step import Checkpoint, RulesStep, decode_or_none, start_marks
from watchkeeper.agents.rules_wiring import RulesAgentSettings, RulesConfigError, load_rules
from watchkeeper.plumbing.self_metrics import RULES_SAMPLES_REJECTED
from watchkeeper.runtime.ownership import Event, Phase

log = logging.getLogger("watchkeeper.rules")

# Partitions more than this far (event time) ahead of the watermark are paused while the others catch up.
AHEAD_SLACK = 120.0

__all__ = ["RulesAgentSettings", "RulesConfigError", "RulesRunner", "register", "rule_topics"]


def register(app: faust.App, settings: RulesAgentSettings) -> None:
    loaded = load_rules(settings)  # RulesConfigError (file, line, group, rule) stops the worker
    if loaded is None:
        log.info("rules: no rule files configured; the rules agent is idle")
        return
    if settings.rules.evaluation == "partitioned":
        register_partial(app, settings, loaded)
        register_merge(app, settings, loaded)
        return
    runner = RulesRunner(settings, loaded.step_factory)
    app.rules_runner = runner  # type: ignore[attr-defined]

    @app.task
    async def rules() -> None:
        await runner.run()


class RulesRunner(ShardedRuleRunner[RulesStep]):
    """Full mode: reads the samples topic into one store, owns rule shards, advances and publishes."""

    def __init__(self, cfg: RulesAgentSettings, step_factory: Callable[[str], RulesStep]) -> None:
        super().__init__(cfg, step_factory)
        self._paused: set[int] = set()
        self._rejected_exported: dict[str, int] = {}  # step.rejected() already added to /metrics

    def decode(self, raw: bytes | None) -> Checkpoint | None:
        return decode_or_none(raw)

    def _start(self, partitions: list[int], checkpoints: dict[int, Any]) -> dict[int, int]:
        """Position every input partition for the checkpoints found: partition -> offset to read from."""
        step = self.step
        out = {}
        for p, mark in start_marks(partitions, step.units, checkpoints).items():
            step.start(p, mark)
            out[p] = mark.offset
        log.info("rules: %d units over %d shards; reading %s from offsets %s", len(step.units), step.shards,
                 self.cfg.kafka.topics.samples, out)
        return out

    def _fetched(self, reader: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
        for tp in tps:
            high = reader.highwater(tp)
            if high is not None:
                self.step.seen_end(tp.partition, high)

    def _ingest(self, partition: int, rec: Any) -> None:
        ms = rec.timestamp  # processing time; none: no future bound for this one
        now = ms / 1000 if ms is not None and ms >= 0 else None
        self.step.ingest(partition, rec.offset, rec.key, rec.value or b"", now)

    def _advanced(self, reader: AIOKafkaConsumer, topic: str) -> None:
        """Pause partitions far ahead of the watermark, resume the others."""
        ahead = set(self.step.ahead(AHEAD_SLACK))
        if ahead != self._paused:
            reader.resume(*[TopicPartition(topic, p) for p in self._paused - ahead])
            reader.pause(*[TopicPartition(topic, p) for p in ahead - self._paused])
            self._paused = ahead

    def _stepped(self) -> None:
        export_rejected(self.step, self._rejected_exported)

    def _checkpointed(self) -> None:
        self.step.prune_marks()

    async def assigned(self, shards: list[int]) -> None:
        for s in shards:
            self.shard_own.transition(s, Event.ASSIGN)
        async with self.lock:
            shards, found = await self._resuming(shards)
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
                self._rewind = {p: m.offset for p, m in marks.items()}
                self.rewinds += 1
            for s in shards:
                if self.shard_own.phase(s) is not Phase.RESUMING:  # revoked meanwhile
                    continue
                self.step.own(s, checkpoints.get(s))
                self._written.pop(s, None)
                self.shard_own.transition(s, Event.RESUMED)
            log.info("rules: %s owns shards %s (units %s)", self.owner, sorted(self.step.owned),
                     self.step.owned_units())


def export_rejected(step: RulesStep, exported: dict[str, int]) -> None:
    """Add what `step.rejected()` counted since the last call (`exported`, updated) to
    `watchkeeper_rules_samples_rejected_total`."""
    for reason, n in step.rejected().items():
        delta = n - exported.get(reason, 0)
        if delta > 0:
            RULES_SAMPLES_REJECTED.labels(reason).inc(delta)
            exported[reason] = n
