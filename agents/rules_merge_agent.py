"""The merge stage of partitioned rule evaluation (``rules.evaluation: partitioned``): every worker process
reads every partition of ``<app_id>-rule-partials`` (what the partial stage, `agents.rules_partial_agent`,
made of each samples partition), owns rule units through the shard consumer group as the full mode does,
merges each owned unit's partials tick by tick (`agents.rules_merge_step`) and publishes as the full mode:
alert state changes on `wk.alerts` (key = fingerprint), recording-rule results on `wk.samples` (key
``rules/<group>``). Each owned shard is checkpointed on ``<app_id>-rule-state``: its units' engines and
stores, and where in the partials a replay starts.
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from watchkeeper.agents.rule_shard_runner import ShardedRuleRunner
from watchkeeper.agents.rules_merge_step import MergeCheckpoint, RulesMergeStep, decode_merge_or_none, start_offsets
from watchkeeper.agents.rules_merge_wiring import merge_step_factory
from watchkeeper.agents.rules_partial_agent import partials_topic
from watchkeeper.agents.rules_wiring import LoadedRules, RulesAgentSettings
from watchkeeper.plumbing.topics import ensure_topics
from watchkeeper.runtime.ownership import Event, Phase
from watchkeeper.schemas.topics import DEFAULT_TOPICS

log = logging.getLogger("watchkeeper.rules")


def register_merge(app: faust.App, settings: RulesAgentSettings, loaded: LoadedRules) -> None:
    runner = RulesMergeRunner(settings, merge_step_factory(loaded, settings.rules.shards, settings.rules.semantics))
    app.rules_merge_runner = runner  # type: ignore[attr-defined]

    @app.task
    async def rules_merge() -> None:
        await runner.run()


class RulesMergeRunner(ShardedRuleRunner[RulesMergeStep]):
    """Reads the partials topic, owns rule shards, merges, evaluates and publishes. One per worker process."""

    def decode(self, raw: bytes | None) -> MergeCheckpoint | None:
        return decode_merge_or_none(raw)

    async def _input_topic(self) -> str:
        """The partials topic, created here too (a partition per samples partition, as the partial stage
        makes it) so that either stage may start first."""
        topic = partials_topic(self.cfg.app_id)
        await ensure_topics(self.cfg.kafka.bootstrap, {topic: DEFAULT_TOPICS["samples"].partitions},
                            self.cfg.kafka.replication_factor)
        return topic

    def _start(self, partitions: list[int], checkpoints: dict[int, Any]) -> dict[int, int]:
        out = start_offsets(partitions, self.step.units, checkpoints)
        for p, offset in out.items():
            self.step.start(p, offset)
        log.info("rules merge: %d units over %d shards; reading %s from offsets %s", len(self.step.units),
                 self.step.shards, partials_topic(self.cfg.app_id), out)
        return out

    def _ingest(self, partition: int, rec: Any) -> None:
        self.step.ingest(partition, rec.offset, rec.key, rec.value or b"", rec.headers)

    async def assigned(self, shards: list[int]) -> None:
        for s in shards:
            self.shard_own.transition(s, Event.ASSIGN)
        async with self.lock:
            shards, found = await self._resuming(shards)
            step = self.step
            for s in shards:
                if self.shard_own.phase(s) is not Phase.RESUMING:  # revoked meanwhile
                    continue
                rec = found.get(s)
                seeks = step.own(s, decode_merge_or_none(rec.value) if rec is not None else None)
                if seeks:
                    self._rewind = {p: min(o, self._rewind.get(p, o)) for p, o in {**self._rewind, **seeks}.items()}
                    self.rewinds += 1
                self._written.pop(s, None)
                self.shard_own.transition(s, Event.RESUMED)
            log.info("rules merge: %s owns shards %s (units %s)", self.owner, sorted(step.owned),
                     step.owned_units())
