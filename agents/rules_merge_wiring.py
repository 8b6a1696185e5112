"""The merge stage's engines and plans, from the loaded rule files: one `ShardPlan` per rule (built from the
same parsed expression the engine evaluates, so the leaves' node ids match), one `RuleEngine` per unit
whose `leaves` callback merges the partials of the tick in samples-partition order."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from watchkeeper.agents.rules_merge_step import LeavesFn, RulesMergeStep
from watchkeeper.agents.rules_step import UnitEngine
from watchkeeper.core.promql.evaluator import DEFAULT_SEMANTICS, Semantics
from watchkeeper.core.rule_units import RuleUnit

if TYPE_CHECKING:
    from watchkeeper.core.promql.sharding import ShardPlan

    from watchkeeper.agents.rules_wiring import LoadedRules
    from watchkeeper.core.rules.loader import RuleGroup

# Series the merge stage holds itself: what its engines write.
ALERT_SERIES = frozenset({"ALERTS", "ALERTS_FOR_STATE"})


def merge_local_names(groups: Sequence[RuleGroup]) -> frozenset[str]:
    """Metric names read from the merge stage's store rather than from the samples partitions: recorded
    metrics (a unit holds every group that reads what it records) and the alerts' own series."""
    return ALERT_SERIES | {r.record for g in groups for r in g.rules if r.record}


def rule_plans(groups: Sequence[RuleGroup]) -> dict[tuple[str, int], ShardPlan]:
    """(group, rule index) -> the rule's plan; the partial stage builds the same from the same text."""
    from watchkeeper.core.promql import sharding

    local = merge_local_names(groups)

    def merge_local(name: str | None) -> bool:
        return name is not None and name in local

    return {(g.name, i): sharding.plan(r.expr, merge_local) for g in groups for i, r in enumerate(g.rules)}


def merge_step_factory(loaded: LoadedRules, shards: int,
                       semantics: Semantics = DEFAULT_SEMANTICS) -> Callable[[str], RulesMergeStep]:
    from watchkeeper.core.promql import sharding
    from watchkeeper.core.rules.engine import RuleEngine

    by_name = {g.name: g for g in loaded.groups}
    plans = rule_plans(loaded.groups)
    record_groups = {r.record: g.name for g in loaded.groups for r in g.rules if r.record}

    def merge_leaves(group: str, rule: int, parts: Sequence[Any]) -> Any:
        p = plans[(group, rule)]
        return sharding.merge(p, [sharding.partials_from_json(x) for x in parts])

    def engine(unit: RuleUnit, snapshot: bytes | None, origin: float, leaves: LeavesFn) -> UnitEngine:
        eng = RuleEngine([by_name[name] for name in unit.groups], semantics=semantics, leaves=leaves)
        if snapshot is not None:
            eng.restore(snapshot)
        elif math.isfinite(origin):
            eng.start_at(origin)
        return eng

    def step(owner: str) -> RulesMergeStep:
        return RulesMergeStep(loaded.units, shards, engine, merge_leaves, retention=loaded.retention, owner=owner,
                              record_groups=record_groups)

    return step
