"""From `watchkeeper.yaml`'s `rules:` section to a ready `RulesStep`: load the rule files (errors name
file, line, group and rule, and stop the worker), cut the groups into units, size the
store's retention, and build engines per unit with `core.rules.engine.RuleEngine`."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from watchkeeper.agents.rules_ingest import IntakeLimits
from watchkeeper.agents.rules_step import EngineFactory, RulesStep, UnitEngine
from watchkeeper.core.errors import CoreError
from watchkeeper.core.promql.evaluator import DEFAULT_SEMANTICS, Semantics
from watchkeeper.core.rule_units import RuleUnit, group_deps, retention_for, rule_units
from watchkeeper.plumbing.config import Config
from watchkeeper.plumbing.errors import RuleFileError

if TYPE_CHECKING:
    from watchkeeper.core.rules.loader import RuleGroup

# Store history kept beyond what the rules read: room for partitions read unevenly (see AHEAD_SLACK).
SKEW_ROOM = 300.0


class RulesConfigError(RuleFileError):
    """A Prometheus rule file or Sloth spec the worker cannot run: the message names file, line, group and rule."""


@dataclass
class LoadedRules:
    groups: list[RuleGroup]
    units: list[RuleUnit]
    retention: float  # store history of the full path: `history` + room for partitions read unevenly
    engine_factory: EngineFactory
    step_factory: Callable[[str], RulesStep]
    history: float  # how far back from a tick the rules read (`core.rule_units.retention_for`)
    limits: IntakeLimits  # how the samples topic is read (the window engine's settings)


def load_rules(cfg: Config) -> LoadedRules | None:
    """The configured rule files, ready to run; None when there are none."""
    if not cfg.rules.files and not cfg.rules.slo_specs:
        return None
    from watchkeeper.core.rules.loader import load_rule_files

    paths = [str(cfg.resolve(f)) for f in cfg.rules.files]
    try:
        groups = load_rule_files(paths, semantics=cfg.rules.semantics)
        groups += slo_rule_groups([str(cfg.resolve(f)) for f in cfg.rules.slo_specs], cfg.rules.slo_period_days,
                                  cfg.rules.semantics)
    except (CoreError, OSError) as exc:
        raise RulesConfigError(f"rule files: {exc}") from None
    if not groups:
        return None
    w = cfg.windows
    return loaded_rules(groups, cfg.rules.shards, w.allowed_lateness, cfg.rules.semantics, max_future=w.max_future,
                        idle_timeout=w.idle_timeout if w.idle_timeout is not None else 2 * w.width + w.allowed_lateness,
                        series_idle=w.series_idle_seconds, max_sources=w.max_sources)


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

    deps = [group_deps(g.name, [r.expr.text for r in g.rules], [r.record for r in g.rules if r.record])
            for g in groups]
    units = rule_units(deps)
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
