"""From `watchkeeper.yaml`'s `rules:` section to a ready `RulesStep`: what the rules agent reads of the file
(`RulesAgentSettings`), load the rule files (errors name file, line, group and rule, and stop the worker), cut
the groups into units, size the store's retention, and build engines per unit with `core.rules.engine.RuleEngine`."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from watchkeeper.agents.rules_ingest import IntakeLimits
from watchkeeper.agents.rules_step import EngineFactory, RulesStep, UnitEngine
from watchkeeper.core.errors import CoreError
from watchkeeper.core.promql.evaluator import DEFAULT_SEMANTICS, Semantics
from watchkeeper.core.rule_units import RuleUnit, retention_for
from watchkeeper.core.rules.unit_plans import partition_problems, units_of
from watchkeeper.plumbing.config import KafkaConfig, RulesConfig, WindowsConfig
from watchkeeper.plumbing.errors import RuleFileError

if TYPE_CHECKING:
    from watchkeeper.core.rules.loader import RuleGroup

# Store history kept beyond what the rules read: room for partitions read unevenly (see AHEAD_SLACK).
SKEW_ROOM = 300.0


class RulesConfigError(RuleFileError):
    """A Prometheus rule file or Sloth spec the worker cannot run: the message names file, line, group and rule."""


@dataclass(frozen=True)
class RulesAgentSettings:
    """What the rules agent (full mode, or the partial and merge stages) reads of `watchkeeper.yaml`, picked by
    the command that starts the worker (as Prometheus' rule manager gets its `ManagerOptions`), so the agent
    depends on these and not on the whole file."""

    kafka: KafkaConfig  # the bootstrap, the topic names, the group session and the replication of its topics
    rules: RulesConfig
    windows: WindowsConfig  # how the samples are read: lateness, future bound, idle sources, series limits
    app_id: str  # names its topics and consumer group (`<app_id>-rule-shards`, `-rule-state`, `-rules`, ...)
    rule_files: tuple[Path, ...]  # rules.files resolved against the config file
    slo_specs: tuple[Path, ...]  # rules.slo_specs resolved against the config file
    data_path: Path  # the evaluation failures the dashboard shows live under it


@dataclass
class LoadedRules:
    groups: list[RuleGroup]
    units: list[RuleUnit]
    retention: float  # store history of the full path: `history` + room for partitions read unevenly
    engine_factory: EngineFactory
    step_factory: Callable[[str], RulesStep]
    history: float  # how far back from a tick the rules read (`core.rule_units.retention_for`)
    limits: IntakeLimits  # how the samples topic is read (the window engine's settings)


def load_rules(settings: RulesAgentSettings) -> LoadedRules | None:
    """The configured rule files, ready to run; None when there are none."""
    if not settings.rule_files and not settings.slo_specs:
        return None
    from watchkeeper.core.rules.loader import load_rule_files

    r = settings.rules
    try:
        groups = load_rule_files([str(f) for f in settings.rule_files], semantics=r.semantics)
        groups += slo_rule_groups([str(f) for f in settings.slo_specs], r.slo_period_days, r.semantics)
    except (CoreError, OSError) as exc:
        raise RulesConfigError(f"rule files: {exc}") from None
    if not groups:
        return None
    w = settings.windows
    idle = w.idle_timeout if w.idle_timeout is not None else 2 * w.width + w.allowed_lateness
    loaded = loaded_rules(groups, r.shards, w.allowed_lateness, r.semantics, max_future=w.max_future,
                          idle_timeout=idle,
                          series_idle=w.series_idle_seconds, max_sources=w.max_sources)
    if r.evaluation == "partitioned":
        problems = partition_problems(loaded.units, loaded.groups)
        if problems:
            raise RulesConfigError("rule files: " + "\n".join(problems))
    return loaded


def slo_rule_groups(spec_paths: list[str], period_days: int = 30,
                    semantics: Semantics = DEFAULT_SEMANTICS) -> list[RuleGroup]:
    """The rule groups Sloth would generate for each spec (SLI recordings, metadata, burn-rate alerts),
    their alerts marked `source: slo`."""
    from watchkeeper.core.rules.loader import load_rules_text
    from watchkeeper.core.slo import generate_rule_groups, load_slo_spec_file, rules_yaml

    out: list[RuleGroup] = []
    for path in spec_paths:
        spec = load_slo_spec_file(path)
        text = rules_yaml(generate_rule_groups(spec, period=period_days * 86400.0), source=path)
        for g in load_rules_text(text, f"{path} (generated SLO rules)", semantics=semantics):
            g.source = "slo"
            out.append(g)
    return out


def loaded_rules(groups: list[RuleGroup], shards: int, lateness: float,
                 semantics: Semantics = DEFAULT_SEMANTICS, *, max_future: float = 600.0,
                 idle_timeout: float = 25.0, series_idle: float | None = None,
                 max_sources: int = 100_000) -> LoadedRules:
    """Units, retention and factories for `groups`, whose expressions were parsed for `semantics`."""
    from watchkeeper.core.rules.engine import RuleEngine

    units = units_of(groups)
    by_name = {g.name: g for g in groups}
    record_groups = {r.record: g.name for g in groups for r in g.rules if r.record}
    reach = [r.expr.max_lookback for g in groups for r in g.rules]
    history = retention_for(reach)
    retention = history + SKEW_ROOM

    def engine(unit: RuleUnit, snapshot: bytes | None, origin: float) -> UnitEngine:
        eng = RuleEngine([by_name[name] for name in unit.groups], semantics=semantics)
        if snapshot is not None:
            eng.restore(snapshot)
        elif math.isfinite(origin):
            eng.start_at(origin)  # otherwise the step's first advance, to the origin, anchors it
        return eng

    limits = IntakeLimits(lateness, max_future, idle_timeout, series_idle, max_sources)

    def step(owner: str) -> RulesStep:
        return RulesStep(units, shards, engine, lateness=lateness, retention=retention, history=history, owner=owner,
                         record_groups=record_groups, max_future=max_future, idle_timeout=idle_timeout,
                         series_idle=series_idle, max_sources=max_sources)

    return LoadedRules(groups, units, retention, engine, step, history, limits)
