"""The merge stage's engines, from the loaded rule files: one `RuleEngine` per unit whose `leaves` callback
merges the partials of the tick in samples-partition order with each rule's `ShardPlan` (`core.rules.unit_plans`,
the partial stage's plans, built over the same parsed expressions the engines evaluate, so the leaves'
node ids match)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from watchkeeper.agents.rules_merge_step import LeavesFn, RulesMergeStep
from watchkeeper.agents.rules_step import UnitEngine
from watchkeeper.core.promql.evaluator import DEFAULT_SEMANTICS, PromQLError, Semantics
from watchkeeper.core.rule_units import RuleUnit

if TYPE_CHECKING:
    from watchkeeper.agents.rules_wiring import LoadedRules


def merge_step_factory(loaded: LoadedRules, shards: int,
                       semantics: Semantics = DEFAULT_SEMANTICS) -> Callable[[str], RulesMergeStep]:
    from watchkeeper.core.promql import sharding
    from watchkeeper.core.rules.engine import RuleEngine
    from watchkeeper.core.rules.unit_plans import unit_plans

    by_name = {g.name: g for g in loaded.groups}
    # The partial stage's plans, from the same function over the same parsed rules (leaves keyed by node id).
    plans = {(g, i): p for up in unit_plans(loaded.units, loaded.groups) for g, ps in up.plans.items()
             for i, p in enumerate(ps)}
    record_groups = {r.record: g.name for g in loaded.groups for r in g.rules if r.record}

    def merge_leaves(group: str, rule: int, parts: Sequence[Any]) -> Any:
        try:
            read = [sharding.partials_from_json(x) for x in parts]
        except ValueError as exc:  # a partial stage of another version, or a bug: this rule fails, loudly
            raise PromQLError(f"unreadable partials: {exc}") from None
        return sharding.merge(plans[(group, rule)], read)

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
