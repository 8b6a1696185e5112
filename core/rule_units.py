"""Rule groups cut into independent evaluation units, and units spread over shards.

Several worker processes evaluate the rules; each reads every sample, so any process can evaluate any
group. What one process cannot see in time is another process's recording-rule output: it comes back
through Kafka, later. So groups that read a series another group records are put in the same *unit*
(the connected components of "reads what the other records"), and a unit is evaluated by one process,
which appends its recorded samples to its own store before the next tick. A unit then gives the same
results in whichever process it runs, and the units are spread over shards by a stable hash.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import promql_parser as pp

from watchkeeper.core.promql.evaluator import ParsedExpr, parse

LOOKBACK = 300.0  # Prometheus' instant-selector lookback (staleness), seconds


@dataclass(frozen=True)
class RuleUnit:
    """Groups evaluated together, in one process. `key` names it stably (sorted group names)."""

    key: str
    groups: tuple[str, ...]

    def shard(self, shards: int) -> int:
        return shard_of(self.key, shards)


def shard_of(key: str, shards: int) -> int:
    """A stable shard for a unit key (crc32: the same in every process and Python run)."""
    return zlib.crc32(key.encode("utf-8")) % shards


def selector_names(expr: str | ParsedExpr) -> set[str] | None:
    """Metric names an expression reads; None when some selector has no exact name (it may read any).
    A text is parsed with the default semantics; a rule's own `ParsedExpr` keeps its file's."""
    names: set[str] = set()
    for node in walk_nodes((parse(expr) if isinstance(expr, str) else expr).node):
        if isinstance(node, pp.VectorSelector):
            exact = [m.value for m in node.matchers.matchers
                     if m.name == "__name__" and str(m.op) == "MatchOp.Equal"]
            name = node.name or (exact[0] if exact else None)
            if name is None:
                return None
            names.add(name)
    return names


def walk_nodes(node: Any) -> Iterable[Any]:
    yield node
    if isinstance(node, pp.ParenExpr | pp.UnaryExpr):
        yield from walk_nodes(node.expr)
    elif isinstance(node, pp.MatrixSelector):
        yield from walk_nodes(node.vector_selector)
    elif isinstance(node, pp.SubqueryExpr):
        yield from walk_nodes(node.expr)
    elif isinstance(node, pp.Call):
        for arg in node.args:
            yield from walk_nodes(arg)
    elif isinstance(node, pp.AggregateExpr):
        yield from walk_nodes(node.expr)
        if node.param is not None:
            yield from walk_nodes(node.param)
    elif isinstance(node, pp.BinaryExpr):
        yield from walk_nodes(node.lhs)
        yield from walk_nodes(node.rhs)


@dataclass(frozen=True)
class GroupDeps:
    """What one group reads (None: any name) and records."""

    name: str
    reads: frozenset[str] | None
    records: frozenset[str]


def group_deps(name: str, exprs: Sequence[str | ParsedExpr], records: Iterable[str]) -> GroupDeps:
    reads: set[str] | None = set()
    for expr in exprs:
        found = selector_names(expr)
        if found is None or reads is None:
            reads = None
        else:
            reads |= found
    return GroupDeps(name, None if reads is None else frozenset(reads), frozenset(records))


def rule_units(groups: Sequence[GroupDeps]) -> list[RuleUnit]:
    """Connected components of "group A reads a metric group B records", in first-seen group order."""
    parent = {g.name: g.name for g in groups}

    def root(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for a in groups:
        for b in groups:
            if a.name != b.name and b.records and (a.reads is None or a.reads & b.records):
                parent[root(a.name)] = root(b.name)
    members: dict[str, list[str]] = {}
    for g in groups:
        members.setdefault(root(g.name), []).append(g.name)
    return [RuleUnit(key="+".join(sorted(names)), groups=tuple(names)) for names in members.values()]


def retention_for(max_lookbacks: Iterable[float], slack: float = 60.0) -> float:
    """How much history a store needs: the longest range + offset + the 5-minute lookback, plus slack.

    `max_lookbacks` are `ParsedExpr.max_lookback` values (range + offset + lookback already)."""
    return max([LOOKBACK, *max_lookbacks]) + slack
