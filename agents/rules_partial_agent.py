"""The partial stage of partitioned rule evaluation on the worker: `wk.samples` partitions owned through
Faust's consumer group (as the window agent owns them), each partition's partials on the same partition of
`<app_id>-rule-partials`. The logic is `agents.rules_partial_step`; the delivery contract is the runtime's
(`runtime.partition_state`, wired to Faust by `agents.partition_wiring`):

- Its own consumer reads the owned partitions, a partition's share of a fetch stepped as one batch.
- Each partition's checkpoint (clock, next ticks, replay mark; not the store) is in table
  `rules-partial-state`, written every `rules.checkpoint_seconds`; a restart replays from the mark.
- Records made from samples partition p go to partials partition p, numbered (`wk-seq`), so a replay
  sends none of them twice and loses none (`runtime.exactly_once`).
- A partition caught up and quiet gets the runtime's idle tick after `IDLE_SECONDS`: one that never had a
  sample says so (`empty: true`), so the merge stage does not wait for it.

Not registered by the worker on its own: the worker picks this or the full path (`agents.rules_agent`).
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from watchkeeper.agents.partition_wiring import RAW, FaustPartitionIO, Wiring, wire
from watchkeeper.agents.rules_partial_step import PartialStep
from watchkeeper.agents.rules_wiring import LoadedRules, RulesAgentSettings
from watchkeeper.core.rules.unit_plans import unit_plans
from watchkeeper.plumbing.topics import ensure_topics
from watchkeeper.runtime.exactly_once import Headers
from watchkeeper.runtime.partition_state import PartitionRuntime, RuntimeSettings
from watchkeeper.schemas.topics import DEFAULT_TOPICS

log = logging.getLogger("watchkeeper.rules")

__all__ = ["PartialsIO", "partials_topic", "register_partial"]

STATE_TABLE = "rules-partial-state"
IDLE_SECONDS = 1.0  # a caught-up partition without input this long gets the runtime's idle tick
BATCH_MESSAGES = 1000  # at most this many messages of a partition per step ...
# ... and this many bytes of them: a step evaluates every tick its messages pass, ~0.1 s of CPU per tick of
# the 10 rules of bench/rules/alert_delay.py over a partition (a 28 KB message each event-time second), so
# 1 MB held the event loop for seconds; 64 KB is about two such ticks
BATCH_BYTES = 64_000
BATCH_SECONDS = 0.25  # Faust's batching of the assignment events


def partials_topic(app_id: str) -> str:
    """`<app_id>-rule-partials`: as many partitions as the samples topic."""
    return f"{app_id}-rule-partials"


class PartialsIO(FaustPartitionIO):
    """`FaustPartitionIO` that makes the partials topic (with the samples' partition count) before the
    first read of it, at the first resume: a topic the broker auto-created would have the wrong count."""

    def __init__(self, *args: Any, partitions: int, replication: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.partitions, self.replication = partitions, replication
        self._made = False

    async def last_output(self, parts: list[int]) -> dict[int, Headers | None]:
        if not self._made:
            await ensure_topics(self.bootstrap, {self.output: self.partitions}, self.replication)
            self._made = True
        return await super().last_output(parts)


def register_partial(app: faust.App, settings: RulesAgentSettings, loaded: LoadedRules) -> PartitionRuntime:
    """The partial stage over `loaded`'s rules on `app`; returns its runtime (the step is `.step`)."""
    kafka, r = settings.kafka, settings.rules
    t, partials = kafka.topics, partials_topic(settings.app_id)
    n = DEFAULT_TOPICS["samples"].partitions  # the partials topic and the state table are co-partitioned
    step = PartialStep(unit_plans(loaded.units, loaded.groups), loaded.limits, retention=loaded.history,
                       heartbeat=r.heartbeat_seconds)
    deadletter = app.topic(t.deadletter, partitions=DEFAULT_TOPICS["deadletter"].partitions, **RAW)
    changelog = app.topic(f"{app.conf.id}-{STATE_TABLE}-changelog", partitions=n, **RAW)
    state = app.Table(STATE_TABLE, partitions=n, key_type=bytes, value_type=bytes, changelog_topic=changelog)
    io = PartialsIO(app, kafka.bootstrap, t.samples, partials, deadletter, changelog, state,
                    partitions=n, replication=kafka.replication_factor)
    runtime_settings = RuntimeSettings(every_seconds=r.checkpoint_seconds, batch_messages=BATCH_MESSAGES,
                                       batch_bytes=BATCH_BYTES, idle_timeout=IDLE_SECONDS)
    runtime = PartitionRuntime(t.samples, step, io, runtime_settings, label="rules-partial")
    wire(app, runtime, app.topic(t.samples, partitions=n, **RAW),
         Wiring("watchkeeper.rules.partial", kafka.bootstrap, BATCH_MESSAGES, BATCH_SECONDS))
    log.info("rules: partial stage of %d units on %s -> %s", len(loaded.units), t.samples, partials)
    return runtime
