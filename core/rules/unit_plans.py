"""Every rule of a rule unit planned for partitioned evaluation (`core.promql.sharding.plan`): what the
partial stage evaluates over each samples partition's store and the merge stage combines. Both stages
build the plans with this one function from the same rule text, so their leaves line up.

Merge-local selectors (read from the merge stage's store, never from a partition's): the unit's own
recorded metrics (a unit holds every group that reads another group's recording, `core.rule_units`, and
recorded samples are not stored by the partial stage), and `ALERTS` / `ALERTS_FOR_STATE` (written by the
merge stage's alert state machine). A selector without an exact metric name reads the partitions' samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from watchkeeper.core.promql.sharding import ShardPlan, plan
from watchkeeper.core.rule_units import RuleUnit
from watchkeeper.core.rules.loader import RuleGroup

ALERT_SERIES = frozenset({"ALERTS", "ALERTS_FOR_STATE"})


@dataclass(frozen=True)
class UnitPlans:
    """A unit's groups (in the unit's order) and the plan of each of their rules (in rule order)."""

    unit: RuleUnit
    groups: tuple[RuleGroup, ...]
    plans: dict[str, tuple[ShardPlan, ...]]  # group name -> one plan per rule


def merge_local_names(groups: Sequence[RuleGroup]) -> frozenset[str]:
    """The metric names of `groups` that only the merge stage's store holds."""
    return ALERT_SERIES | {r.record for g in groups for r in g.rules if r.record}


def unit_plans(units: Sequence[RuleUnit], groups: Sequence[RuleGroup]) -> list[UnitPlans]:
    """The plans of every unit, in `units` order."""
    by_name = {g.name: g for g in groups}
    out = []
    for unit in units:
        members = tuple(by_name[name] for name in unit.groups)
        local = merge_local_names(members)

        def merge_local(name: str | None, local: frozenset[str] = local) -> bool:
            return name is not None and name in local

        out.append(UnitPlans(unit, members, {
            g.name: tuple(plan(r.expr, merge_local) for r in g.rules) for g in members}))
    return out
