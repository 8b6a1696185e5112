"""Every rule of a rule unit planned for partitioned evaluation (`core.promql.sharding.plan`): what the
partial stage evaluates over each samples partition's store and the merge stage combines. Both stages
build the plans with this one function from the same rule text, so their leaves line up.

Merge-local selectors (read from the merge stage's store, never from a partition's): the unit's own
recorded metrics (a unit holds every group that reads another group's recording, `core.rule_units`, and
recorded samples are not stored by the partial stage), and `ALERTS` / `ALERTS_FOR_STATE` (written by the
merge stage's alert state machine). A selector without an exact metric name reads the partitions' samples.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import promql_parser as pp

from watchkeeper.core.promql.evaluator import ParsedExpr, PromQLError, Semantics, _Evaluation, parse
from watchkeeper.core.promql.series_store import exact_name
from watchkeeper.core.promql.sharding import ShardPlan, plan
from watchkeeper.core.rule_units import RuleUnit, group_deps, rule_units, walk_nodes
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


def units_of(groups: Sequence[RuleGroup]) -> list[RuleUnit]:
    """The groups cut into units (`core.rule_units.rule_units`), read from their parsed expressions (each
    with its file's semantics)."""
    return rule_units([group_deps(g.name, [r.expr for r in g.rules], [r.record for r in g.rules if r.record])
                       for g in groups])


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


_ACTION = re.compile(r"\{\{(.*?)\}\}", re.S)
_QUERY = re.compile(r"\bquery\b(\s*(\"(?:[^\"\\]|\\.)*\"|`[^`]*`))?")


def partition_problems(units: Sequence[RuleUnit], groups: Sequence[RuleGroup]) -> list[str]:
    """What partitioned evaluation cannot give as one process would, one message per rule (file, line,
    group, rule), so the worker refuses it rather than evaluate it differently:

    - a template `query` (in a label or annotation) is evaluated by the merge stage against its own store,
      which holds only the unit's recorded series and ALERTS: one reading any other metric, or whose text
      is built at run time, would see nothing;
    - a selector without an exact metric name in a unit that records series or has alerts could match
      those (only the merge stage holds them) as well as the partitions' samples.
    """
    by_name = {g.name: g for g in groups}
    out: list[str] = []
    for unit in units:
        members = [by_name[n] for n in unit.groups]
        local = merge_local_names(members)
        recorded = local - ALERT_SERIES
        has_alerts = any(r.alert for g in members for r in g.rules)
        held = recorded | (ALERT_SERIES if has_alerts else frozenset())
        for g in members:
            for r in g.rules:
                where = f"{g.path}:{r.line}: group {g.name!r}, rule {r.name!r}" if r.line else \
                    f"{g.path}: group {g.name!r}, rule {r.name!r}"
                for sel in _nameless_reading(r.expr, held):
                    out.append(f"{where}: the selector {sel} has no exact metric name and may read the "
                               f"series this unit records or its ALERTS, which only the merge stage holds")
                for text in [*r.labels.values(), *r.annotations.values()]:
                    for why in _template_queries(text, local, r.expr.semantics):
                        out.append(f"{where}: {why}")
    return [f"{m} (partitioned evaluation cannot run it: set rules.evaluation: full)" for m in out]


def _nameless_reading(expr: ParsedExpr, held: frozenset[str]) -> list[str]:
    """Selectors without an exact name whose name matchers accept one of the `held` names."""
    found = []
    for node in walk_nodes(expr.node):
        if not isinstance(node, pp.VectorSelector) or _name(node, expr.dotall) is not None:
            continue
        matchers = [m for m in _Evaluation.matchers(node, expr.dotall) if m.name == "__name__"]
        if any(all(m.matches({"__name__": n}) for m in matchers) for n in held):
            found.append(str(node))
    return found


def _name(node: Any, dotall: bool) -> str | None:
    return exact_name(_Evaluation.matchers(node, dotall))


def _template_queries(text: str, local: frozenset[str], semantics: Semantics) -> list[str]:
    """Why each `query` call in a template cannot run at the merge stage (none: all can)."""
    out = []
    for action in _ACTION.findall(text):
        for m in _QUERY.finditer(action):
            literal = m.group(2)
            if literal is None:
                out.append(f"a template calls query with a text built at run time ({action.strip()!r})")
                continue
            q = literal[1:-1] if literal[0] == "`" else literal[1:-1].encode().decode("unicode_escape")
            try:
                parsed = parse(q, semantics)
                names = {_name(n, parsed.dotall) for n in walk_nodes(parsed.node) if isinstance(n, pp.VectorSelector)}
            except PromQLError:
                continue  # the template check at load reports a query that does not parse
            outside = sorted(str(n) for n in names if n not in local)
            if outside:
                out.append(f"a template queries {q!r}, which reads {', '.join(outside)} (only the unit's recorded "
                           f"series and ALERTS are at the merge stage)")
    return out
