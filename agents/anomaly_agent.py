"""The anomaly agent: `anomaly:` rule groups scored on `wk.aggregates` and/or `wk.samples`; alert state
changes on `wk.alerts` (key = fingerprint, `source: anomaly`). The logic is in `agents.anomaly_step`,
`core.anomaly_scoring` and `core.detectors`; the delivery contract is the runtime's
(`runtime.partition_state`, wired to Faust by `agents.partition_wiring`), one runtime per input topic
the rules read:

- Its own consumer reads the owned partitions (Faust's fetching of them paused), a partition's share of
  a fetch (up to `anomaly.batch_messages`) scored as one batch, each (rule, series)'s points in one
  detector call.
- Each input partition's states (detector, alert, newest point scored, per (rule, series)) are one
  checkpoint (`runtime.checkpoint.Checkpoint`) in table `anomaly-<input>-state`, written every
  `anomaly.checkpoint_messages` messages or `anomaly.checkpoint_seconds`; a restart replays the input
  after it, which scores the same points again from the same states (scoring does not depend on batch
  boundaries).
- Alert events made from input partition p go to `wk.alerts` partition p, numbered (`wk-seq`) in the
  stream `anomaly/<input>` (`wk-stream`: the alerts topic has other writers), so a replay sends none of
  them twice and loses none (`runtime.exactly_once`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import faust

from watchkeeper.agents.anomaly_step import AnomalyStep
from watchkeeper.agents.partition_wiring import RAW, FaustPartitionIO, Wiring, wire
from watchkeeper.core.anomaly_rules import AnomalyRule, load_anomaly_files
from watchkeeper.core.errors import CoreError
from watchkeeper.plumbing.config import AnomalyConfig, KafkaConfig
from watchkeeper.plumbing.errors import RuleFileError
from watchkeeper.runtime.partition_state import PartitionRuntime, RuntimeSettings
from watchkeeper.schemas.topics import DEFAULT_TOPICS

log = logging.getLogger("watchkeeper.anomaly")

__all__ = ["AnomalyAgentSettings", "AnomalyConfigError", "load_rules", "register"]


class AnomalyConfigError(RuleFileError):
    """An anomaly rule file the worker cannot run: the message names file, line, group and rule."""


@dataclass(frozen=True)
class AnomalyAgentSettings:
    """What the anomaly agent reads of `watchkeeper.yaml`, picked by the command that starts the worker (as
    Prometheus' rule manager gets its `ManagerOptions`), so the agent depends on these and not on the whole file."""

    kafka: KafkaConfig  # the bootstrap and the topic names
    anomaly: AnomalyConfig  # batching and checkpoint cadence
    rule_files: tuple[Path, ...]  # anomaly.files resolved against the config file


def load_rules(settings: AnomalyAgentSettings) -> list[AnomalyRule]:
    """Every rule of the configured anomaly files (none configured: an empty list)."""
    try:
        groups = load_anomaly_files([str(f) for f in settings.rule_files])
    except (CoreError, OSError) as exc:
        raise AnomalyConfigError(f"anomaly rule files: {exc}") from None
    return [r for g in groups for r in g.rules]


def register(app: faust.App, settings: AnomalyAgentSettings) -> None:
    rules = load_rules(settings)  # AnomalyConfigError stops the worker before it touches Kafka
    if not rules:
        log.info("anomaly: no anomaly rules configured; the anomaly agent is idle")
        return
    t, a = settings.kafka.topics, settings.anomaly
    n = DEFAULT_TOPICS["samples"].partitions  # the inputs and the state tables are co-partitioned
    deadletter = app.topic(t.deadletter, partitions=DEFAULT_TOPICS["deadletter"].partitions, **RAW)
    runtime_settings = RuntimeSettings(every_messages=a.checkpoint_messages, every_seconds=a.checkpoint_seconds,
                                       batch_messages=a.batch_messages)
    steps: dict[str, AnomalyStep] = {}
    for kind, name in (("aggregates", t.aggregates), ("samples", t.samples)):
        if not any(r.input == kind for r in rules):
            continue
        step = steps[kind] = AnomalyStep(rules, kind)
        table = f"anomaly-{kind}-state"
        changelog = app.topic(f"{app.conf.id}-{table}-changelog", partitions=n, **RAW)
        state = app.Table(table, partitions=n, key_type=bytes, value_type=bytes, changelog_topic=changelog)
        io = FaustPartitionIO(app, settings.kafka.bootstrap, name, t.alerts, deadletter, changelog, state,
                              stream=f"anomaly/{kind}")
        runtime = PartitionRuntime(name, step, io, runtime_settings, label="anomaly")
        wire(app, runtime, app.topic(name, partitions=n, **RAW),
             Wiring(f"watchkeeper.anomaly.{kind}", settings.kafka.bootstrap, a.batch_messages, a.batch_seconds))
        log.info("anomaly: %d rules on %s", len(step.rules), name)
    app.anomaly_steps = steps  # type: ignore[attr-defined]
