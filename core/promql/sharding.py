"""Partitioned evaluation of one PromQL expression: what each samples partition computes alone (`partial`),
how the partitions' results combine (`merge`), and the rest evaluated over the combined values.

Why: a rules process that reads every sample is the ceiling of the whole deployment. Most of a rule's
work is series-local (selectors, range functions, per-series arithmetic) or an aggregation whose partial
states merge (sum, count, min, max, ...), so each partition's owner computes those parts over the series
it holds, and one merge stage evaluates the rest, as Thanos/Mimir query sharding and Flink's two-phase
aggregation do.

`plan` cuts the expression into **leaves**, each a subtree replaced at the merge stage by a value:

- *series*: a series-local subtree (its output samples come from one input series each); merged by
  union. Two partitions giving the same label set is the error the single-store evaluation raises.
- *agg*: an aggregation of a series-local subtree with a literal parameter; each partition sends
  mergeable states per group (Kahan pairs, Welford/Chan moments, per-partition top k, exact values for
  quantile).
- *any*: only whether a series-local subtree has any sample (absent, absent_over_time).
- *raw*: the points of a selector over everything the expression may read of it, for what cannot be
  split (a subquery over an aggregation, info()); merged into a temporary store the selector reads.

A node that may merge two series into one label set (label_replace, label_join, dropping the name of
series whose names differ) must find the collision the single-store evaluation finds first: it is never
inside a leaf; the merge stage evaluates it over the union of its input (inside a subquery: raw).

Errors: a partition's evaluation error travels as an entry ``{"error": msg}``; merge turns it (and a label
set duplicated across partitions) into a LeafError, which `evaluate` raises when it reaches the leaf: the
expression fails with the error, and in the order, the single-store evaluation would have.

Results do not depend on how the series are spread: merged vectors are ordered by label set, and merged
groups by their labels. Float sums are combined per partition (rounding may differ from the single-store
order in the last bits: sum/avg within ~1e-12 relative, stddev/stdvar too when a partition holds more than
`EXACT_VARIANCE_MEMBERS` members of the aggregation; below, their result is the single store's, bit for bit).
"""

from __future__ import annotations

import base64
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import promql_parser as pp

from watchkeeper.core.promql import evaluator as ev
from watchkeeper.core.promql.evaluator import (
    DEFAULT_SUBQUERY_STEP,
    LeafError,
    Leaves,
    ParsedExpr,
    PromQLError,
    evaluate,
)
from watchkeeper.core.promql.series_store import SeriesStore, exact_name
from watchkeeper.core.promql.values import Scalar, SeriesData, VectorSample, labels_key

Partials = list[dict[str, Any]]
LeafKind = Literal["series", "agg", "any", "raw"]
MergeLocal = Callable[[str | None], bool]

LOOKBACK = 300.0  # the evaluator's default lookback, which every rule evaluation uses
_MS = 0.001  # a raw window is widened by a millisecond at its left end: Prometheus 2 includes that edge

# Aggregations whose partial states merge exactly (or within float rounding for sums).
SPLIT_AGGREGATIONS = frozenset({
    "sum", "count", "min", "max", "avg", "group", "stddev", "stdvar", "count_values", "topk", "bottomk", "quantile",
})  # fmt: skip
# Per-series functions of one instant vector: each output sample is its input sample changed.
_MAP_FUNCTIONS = frozenset({
    "abs", "ceil", "floor", "sqrt", "exp", "ln", "log2", "log10", "sgn", "sin", "cos", "tan", "asin", "acos",
    "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "rad", "deg", "clamp", "clamp_min", "clamp_max",
    "round", "timestamp", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "hour", "minute", "month",
    "year",
})  # fmt: skip
_LABEL_FUNCTIONS = frozenset({"label_replace", "label_join"})
_KEEP_NAME_RANGE = frozenset({"last_over_time", "first_over_time"})
# Functions of scalars only: a subtree of them (and literals) has the same value in every partition.
_SCALAR_FUNCTIONS = frozenset({"time", "pi", "start", "end", "range", "step", "min_of", "max_of", "scalar"})


@dataclass(frozen=True)
class Leaf:
    """A subtree whose value the partitions compute (see the module docstring for the kinds)."""

    kind: LeafKind
    node: Any
    op: str = ""  # agg: the aggregation

    def describe(self, text: str) -> str:
        body = _text(self.node, text)
        if self.kind == "agg":
            return f"partial {body}"
        if self.kind == "series":
            return f"per-series {body}"
        if self.kind == "any":
            return f"presence of {body}"
        return f"raw {body}"


@dataclass(frozen=True)
class ShardPlan:
    """An expression cut into leaves; the same text always gives the same plan (every stage builds its own)."""

    expr: ParsedExpr
    leaves: tuple[Leaf, ...]
    notes: tuple[str, ...] = field(default=())  # what was kept whole and why, for describe()

    def describe(self) -> str:
        """One line for `watchkeeper rules check`: what each partition computes, what the merge stage does."""
        parts = [leaf.describe(self.expr.text) for leaf in self.leaves]
        if not parts:
            parts = ["merge stage only (reads no partitioned series)"]
        return "; ".join([*parts, *self.notes])


class ShardPlanError(PromQLError):
    """An expression that cannot be evaluated partitioned (the rule must run in the `full` mode)."""


# ------------------------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class _Local:
    """What planning knows of a series-local subtree.

    ``many_names``: its samples may differ in metric name (so dropping the name may merge two of them);
    ``collides``: the top node may give two samples one label set; ``collides_below``: a node under it may.
    """

    many_names: bool
    collides: bool = False
    collides_below: bool = False


def plan(expr: ParsedExpr, merge_local: MergeLocal = lambda name: False) -> ShardPlan:
    """Cut ``expr`` into leaves. ``merge_local(name)`` (None: a selector without an exact metric name) says
    which selectors read the merge stage's own store (the unit's recorded metrics, ALERTS): those stay
    in the expression, evaluated at the merge stage.

    A selector without an exact name where merge_local(None) is true could match both partitioned and
    merge-local series: a ShardPlanError (give it a name, or evaluate the rule in the full mode).
    """
    if expr.reads_query:
        # An instant evaluation parses such an expression again for step 0 and range 0 (evaluate());
        # the plan must hold the very nodes evaluate() walks.
        expr = ev._parse_for_query(expr.text, expr.semantics, (0.0, 0.0))
    planner = _Planner(expr, merge_local)
    planner.cut(expr.node)
    return ShardPlan(expr=expr, leaves=tuple(planner.leaves), notes=tuple(planner.notes))


class _Planner:
    def __init__(self, expr: ParsedExpr, merge_local: MergeLocal) -> None:
        self.expr = expr
        self.merge_local = merge_local
        self.prometheus3 = expr.semantics == "prometheus3"
        self.leaves: list[Leaf] = []
        self.notes: list[str] = []
        self._local: dict[int, _Local | None] = {}

    # -- what is series-local

    def selector_local(self, vs: Any) -> bool:
        matchers = ev._Evaluation.matchers(vs, self.expr.dotall)
        name = exact_name(matchers)
        if name is None and self.merge_local(None):
            raise ShardPlanError(
                f"the selector {_text(vs, self.expr.text)} has no exact metric name, so it may match both "
                f"partitioned series and the merge stage's own (recorded, ALERTS): give it a metric name or "
                f"evaluate this rule in the full mode (in {self.expr.text!r})")
        return not self.merge_local(name)

    def local(self, node: Any) -> _Local | None:
        key = id(node)
        if key not in self._local:
            self._local[key] = self._classify(node)
        return self._local[key]

    def _classify(self, node: Any) -> _Local | None:
        if isinstance(node, pp.ParenExpr):
            return self.local(node.expr)
        if isinstance(node, pp.VectorSelector):
            if not self.selector_local(node):
                return None
            name = exact_name(ev._Evaluation.matchers(node, self.expr.dotall))
            return _Local(many_names=name is None)
        if isinstance(node, pp.MatrixSelector):
            return self.local(node.vector_selector)
        if isinstance(node, pp.SubqueryExpr):
            inner = self.local(node.expr)
            if inner is None:
                return None
            # a subquery merges equal label sets across its steps, as the union of partitions does
            return _Local(inner.many_names, inner.collides, inner.collides_below)
        if isinstance(node, pp.UnaryExpr):
            inner = self.local(node.expr)
            return None if inner is None else self.dropping(inner)
        if isinstance(node, pp.Call):
            return self._classify_call(node)
        if isinstance(node, pp.BinaryExpr):
            op = str(node.op)
            if op in ev.SET_OPERATORS:
                return None
            lhs_const, rhs_const = _is_constant(node.lhs), _is_constant(node.rhs)
            if lhs_const == rhs_const:
                return None
            inner = self.local(node.rhs if lhs_const else node.lhs)
            if inner is None:
                return None
            return_bool = bool(node.modifier is not None and node.modifier.return_bool)
            if op in ev.ARITHMETIC or return_bool or (op == "atan2" and self.prometheus3):
                return self.dropping(inner)
            return _Local(inner.many_names, False, inner.collides or inner.collides_below)
        return None

    def _classify_call(self, node: Any) -> _Local | None:
        name, args = node.func.name, list(node.args)
        if name in ev.RANGE_KERNELS or name in _MAP_FUNCTIONS or name in _LABEL_FUNCTIONS:
            if not args:
                return None  # hour() etc. without an argument: the evaluation time, not a series
            at = 1 if name == "quantile_over_time" else 0
            inner = self.local(args[at])
            if inner is None or not all(_is_constant(a) for i, a in enumerate(args) if i != at):
                return None
            if name in _LABEL_FUNCTIONS:
                dst = ev._string_arg(args[1])
                return _Local(inner.many_names or dst == ev.NAME, True, inner.collides or inner.collides_below)
            if name in _KEEP_NAME_RANGE:
                return _Local(inner.many_names, False, inner.collides or inner.collides_below)
            return self.dropping(inner)
        return None

    def dropping(self, inner: _Local) -> _Local:
        """A node that drops the metric name: it merges series that differed only by it."""
        return _Local(False, inner.many_names, inner.collides or inner.collides_below)

    # -- cutting

    def leaf(self, kind: LeafKind, node: Any, op: str = "") -> None:
        self.leaves.append(Leaf(kind, node, op))

    def cut(self, node: Any) -> None:
        """Make leaves of the largest splittable subtrees under ``node`` (walk order: evaluation order)."""
        local = self.local(node)
        # A node that may merge two series into one label set is evaluated at the merge stage, over the
        # union in label order: the collision it finds first is the one the single-store evaluation finds.
        if local is not None and not local.collides and not local.collides_below and (
                node is self.expr.node or not isinstance(node, pp.MatrixSelector)):
            self.leaf("series", node)
            return
        if isinstance(node, pp.AggregateExpr) and self.cut_aggregation(node):
            return
        if isinstance(node, pp.Call) and node.func.name in ("absent", "absent_over_time") and node.args:
            arg = node.args[0]
            inner = self.local(arg)
            if inner is not None and not inner.collides and not inner.collides_below:
                self.leaf("any", _unparen_matrix(arg))
                return
        info = isinstance(node, pp.Call) and node.func.name == "info"
        if isinstance(node, pp.SubqueryExpr | pp.MatrixSelector) or info:
            # range functions read a range selector's points (and timestamp() its selector's) themselves
            self.raw(node)
            return
        if isinstance(node, pp.Call) and node.func.name == "timestamp":
            arg = ev._unparen(node.args[0])
            if isinstance(arg, pp.VectorSelector):
                self.raw(arg)
                return
        for child in _children(node):
            self.cut(child)

    def cut_aggregation(self, node: Any) -> bool:
        op = str(node.op)
        if op not in SPLIT_AGGREGATIONS:
            return False
        child = self.local(node.expr)
        if child is None or child.collides or child.collides_below:
            return False
        if node.param is not None and not _is_constant(node.param):
            return False
        self.leaf("agg", node, op)
        return True

    def raw(self, node: Any) -> None:
        """Every partitioned selector under ``node`` becomes a raw leaf (info(): the whole call reads a
        store of every series, since it reads series no selector names)."""
        if isinstance(node, pp.Call) and node.func.name == "info":
            self.leaf("raw", node)
            self.notes.append("raw: info() reads every series")
            return
        if isinstance(node, pp.VectorSelector):
            if self.selector_local(node):
                self.leaf("raw", node)
            return
        if isinstance(node, pp.SubqueryExpr) and not self.notes:
            self.notes.append(f"raw: subquery {_text(node, self.expr.text)}")
        for child in _children(node):
            self.raw(child)


def _children(node: Any) -> list[Any]:
    if isinstance(node, pp.ParenExpr | pp.UnaryExpr | pp.SubqueryExpr):
        return [node.expr]
    if isinstance(node, pp.MatrixSelector):
        return [node.vector_selector]
    if isinstance(node, pp.Call):
        return list(node.args)
    if isinstance(node, pp.AggregateExpr):
        return [c for c in (node.param, node.expr) if c is not None]
    if isinstance(node, pp.BinaryExpr):
        return [node.lhs, node.rhs]
    return []


def _unparen_matrix(node: Any) -> Any:
    return ev._unparen(node)


def _is_constant(node: Any) -> bool:
    """A scalar or string that reads no series: the same in every partition and at the merge stage."""
    node = ev._unparen(node)
    if isinstance(node, pp.NumberLiteral | pp.StringLiteral):
        return True
    if isinstance(node, pp.UnaryExpr):
        return _is_constant(node.expr)
    if isinstance(node, pp.BinaryExpr):
        return _is_constant(node.lhs) and _is_constant(node.rhs)
    if isinstance(node, pp.Call) and node.func.name in _SCALAR_FUNCTIONS:
        if node.func.name == "scalar":
            return not _reads_series(node)
        return all(_is_constant(a) for a in node.args)
    return False


def _reads_series(node: Any) -> bool:
    if isinstance(node, pp.VectorSelector):
        return True
    if isinstance(node, pp.Call) and node.func.name == "info":
        return True
    return any(_reads_series(c) for c in _children(node))


def _text(node: Any, expr: str) -> str:
    try:
        return str(node.prettify()).replace("\n", " ")
    except Exception:  # a description only
        return expr


# --------------------------------------------------------------------------------------------- partial


def partial(plan: ShardPlan, t: float, store: SeriesStore,
            subquery_step: float = DEFAULT_SUBQUERY_STEP) -> Partials:
    """What one partition contributes at time ``t``: one JSON-able entry per leaf of ``plan``.

    An evaluation error of a leaf is an entry ``{"error": msg}``: merge turns it into the error the
    single-store evaluation raises."""
    out: Partials = []
    for leaf in plan.leaves:
        try:
            out.append(_PARTIAL[leaf.kind](plan, leaf, t, store, subquery_step))
        except PromQLError as exc:
            out.append({"error": str(exc)})
    return out


def _eval(plan: ShardPlan, node: Any, t: float, store: SeriesStore, subquery_step: float) -> ev.Value:
    """``node`` alone, with the expression's text (errors name the whole expression, as single-store)."""
    sub = ParsedExpr(text=plan.expr.text, node=node, max_lookback=plan.expr.max_lookback,
                     semantics=plan.expr.semantics)
    return evaluate(sub, t, store, subquery_step=subquery_step)


def _partial_series(plan: ShardPlan, leaf: Leaf, t: float, store: SeriesStore, step: float) -> dict[str, Any]:
    value = _eval(plan, leaf.node, t, store, step)
    if isinstance(value, Scalar):
        raise PromQLError(f"a series leaf gave a scalar (in {plan.expr.text!r})")
    if value and isinstance(value[0], SeriesData):
        return _matrix_entry(value)
    vec: list[VectorSample] = value  # type: ignore[assignment]
    return {"k": "vec", "l": [s.labels for s in vec], "v": _pack([s.value for s in vec])}


def _matrix_entry(series: list[SeriesData]) -> dict[str, Any]:
    return {"k": "mat", "l": [s.labels for s in series], "n": [len(s.ts) for s in series],
            "t": _pack_array(np.concatenate([s.ts for s in series]) if series else np.empty(0)),
            "v": _pack_array(np.concatenate([s.values for s in series]) if series else np.empty(0))}


def _partial_any(plan: ShardPlan, leaf: Leaf, t: float, store: SeriesStore, step: float) -> dict[str, Any]:
    value = _eval(plan, leaf.node, t, store, step)
    return {"k": "any", "x": bool(value) if not isinstance(value, Scalar) else True}


def _partial_raw(plan: ShardPlan, leaf: Leaf, t: float, store: SeriesStore, step: float) -> dict[str, Any]:
    lo, hi = _read_window(plan, leaf.node, t, step)
    if isinstance(leaf.node, pp.VectorSelector):
        matchers = ev._Evaluation.matchers(leaf.node, plan.expr.dotall)
    else:  # info(): every series
        matchers = [ev.Matcher(ev.NAME, "=~", ".+")]
    if lo > hi:
        return _matrix_entry([])
    return _matrix_entry(store.select(matchers, lo - _MS, hi))


def _partial_agg(plan: ShardPlan, leaf: Leaf, t: float, store: SeriesStore, step: float) -> dict[str, Any]:
    node, op = leaf.node, leaf.op
    value = _eval(plan, node.expr, t, store, step)
    if isinstance(value, Scalar) or (value and isinstance(value[0], SeriesData)):
        raise PromQLError(f"expected an instant vector (in {plan.expr.text!r})")
    vec: list[VectorSample] = value  # type: ignore[assignment]
    param = 0.0
    if op == "count_values":
        vec = [VectorSample({**s.labels, ev._string_arg(node.param): ev._go_format_f(s.value)}, s.value) for s in vec]
    elif node.param is not None:
        p = _eval(plan, node.param, t, store, step)
        if not isinstance(p, Scalar):
            raise PromQLError(f"expected a scalar (in {plan.expr.text!r})")
        param = p.value
    groups = _groups(node, vec)
    entry: dict[str, Any] = {"k": "agg", "n": len(vec), "p": _pack([param]), "g": [gl for gl, _ in groups]}
    prometheus3 = plan.expr.semantics == "prometheus3"
    if op in ("topk", "bottomk"):
        if math.isnan(param) or abs(param) >= 2.0**63:
            raise PromQLError(f"Scalar value {param} overflows int64 (in {plan.expr.text!r})")
        k = min(int(param), len(vec))
        tops = [ev._top_k(members, k, reverse=op == "bottomk") if k >= 1 else [] for _, members in groups]
        entry["m"] = [[s.labels for s in top] for top in tops]
        entry["v"] = _pack([s.value for top in tops for s in top])
    elif op == "quantile":
        entry["c"] = [len(members) for _, members in groups]
        entry["v"] = _pack([s.value for _, members in groups for s in members])
    elif op in ("stddev", "stdvar") and len(vec) <= EXACT_VARIANCE_MEMBERS:
        entry["m"] = [[s.labels for s in members] for _, members in groups]
        entry["v"] = _pack([s.value for _, members in groups for s in members])
    else:
        entry["s"] = _pack([x for _, members in groups for x in _state(op, [s.value for s in members], prometheus3)])
    return entry


def _read_window(plan: ShardPlan, target: Any, t: float, step: float) -> tuple[float, float]:
    """The times (lo, hi] the evaluation at ``t`` may read of ``target``'s series: every time a selector
    under it is evaluated at (subqueries' steps, @ and offset), widened by its range and the lookback."""
    clock = ev._Evaluation(t, SeriesStore(), LOOKBACK, plan.expr.text)
    windows: list[tuple[float, float]] = []

    def base(at: Any, offset: Any, lo: float, hi: float) -> tuple[float, float]:
        if at is not None:
            lo = hi = clock.base_time(at)
        shift = ev._seconds(offset)
        return lo - shift, hi - shift

    def walk(node: Any, lo: float, hi: float, inside: bool) -> None:
        inside = inside or node is target
        if isinstance(node, pp.VectorSelector | pp.MatrixSelector):
            vs = node if isinstance(node, pp.VectorSelector) else node.vector_selector
            if inside or vs is target:
                b_lo, b_hi = base(vs.at, vs.offset, lo, hi)
                kind = ev._extension(vs)
                reach = ev._seconds(node.range) if isinstance(node, pp.MatrixSelector) else 0.0
                back = LOOKBACK if isinstance(node, pp.VectorSelector) or kind is not None else 0.0
                windows.append((b_lo - reach - back, b_hi + (LOOKBACK if kind == "smoothed" else 0.0)))
            return
        if isinstance(node, pp.SubqueryExpr):
            b_lo, b_hi = base(node.at, node.offset, lo, hi)
            walk(node.expr, b_lo - ev._seconds(node.range), b_hi, inside)
            return
        for child in _children(node):
            walk(child, lo, hi, inside)

    walk(plan.expr.node, t, t, False)
    if not windows:
        return t - LOOKBACK, t
    lo = min(w[0] for w in windows)
    if not isinstance(target, pp.VectorSelector):
        lo -= LOOKBACK  # info(): the info series are read a lookback before its selectors' times
    return lo, max(w[1] for w in windows)


_PartialFn = Callable[[ShardPlan, Leaf, float, SeriesStore, float], dict[str, Any]]
_PARTIAL: dict[LeafKind, _PartialFn] = {
    "series": _partial_series, "agg": _partial_agg, "any": _partial_any, "raw": _partial_raw,
}

# stddev/stdvar of at most this many members in a partition ship the members (label sets and values), so the
# merge replays the evaluator's single pass over the whole group in the single store's order (sorted label
# sets) and gets its result bit for bit (promtool compares bits); larger ones ship Welford moments, combined
# with Chan's update (within ~1e-12 relative).
EXACT_VARIANCE_MEMBERS = 256

# The state of one group per aggregation: its width, and how it is built from the group's values.
_WIDTH = {"sum": 2, "count": 1, "count_values": 1, "min": 1, "max": 1, "group": 1, "avg": 4, "stddev": 5,
          "stdvar": 5}


def _state(op: str, values: list[float], prometheus3: bool) -> list[float]:
    """A group's mergeable state (width _WIDTH[op]), computed in input order as the evaluator does."""
    if op == "sum":
        if prometheus3:
            total, c = 0.0, 0.0
            for x in values:
                total, c = ev._kahan_inc(x, total, c)
            return [total, c]
        total = 0.0
        for x in values:
            total += x
        return [total, 0.0]
    if op in ("count", "count_values"):
        return [float(len(values))]
    if op in ("min", "max", "group"):
        return [ev._aggregate_values(op, values, 0.0, prometheus3)]
    if op == "avg":
        total, c = 0.0, 0.0
        for x in values:
            total, c = ev._kahan_inc(x, total, c)
        return [float(len(values)), total, c, ev._aggregate_values("avg", values, 0.0, prometheus3)]
    if op in ("stddev", "stdvar"):
        finite = all(math.isfinite(x) for x in values)
        mean, m2, n = 0.0, 0.0, 0.0
        if finite:  # Welford, as the evaluator; non-finite values make any merged result NaN
            for x in values:
                n += 1
                delta = x - mean
                mean += delta / n
                m2 += delta * (x - mean)
        return [float(len(values)), mean, m2, 0.0 if finite else 1.0, values[0]]
    raise PromQLError(f"aggregation {op} cannot be split")


def _groups(node: Any, vec: list[VectorSample]) -> list[tuple[dict[str, str], list[VectorSample]]]:
    """The evaluator's grouping (aggregate()), groups in order of first member."""
    modifier = node.modifier
    without = modifier is not None and modifier.type == pp.AggModifierType.Without
    grouping = list(modifier.labels) if modifier is not None else []
    if str(node.op) == "count_values" and not without:
        grouping = sorted({*grouping, ev._string_arg(node.param)})
    return list(ev.group_samples(vec, grouping, without).values())


# ----------------------------------------------------------------------------------------------- merge


def merge(plan: ShardPlan, parts: Sequence[Partials]) -> Leaves:
    """The leaves' values from every partition's partials (in samples-partition order), for
    ``evaluate(plan.expr, t, store, leaves=...)``.

    An error (a partition's, or a label set two partitions both gave) becomes a LeafError that evaluate()
    raises when it reaches that leaf, so the expression fails as its single-store evaluation would."""
    out: dict[int, ev.Value | SeriesStore | LeafError] = {}
    for i, leaf in enumerate(plan.leaves):
        entries = [p[i] for p in parts]
        errors = [e["error"] for e in entries if "error" in e]
        if errors:
            out[id(leaf.node)] = LeafError(errors[0])
            continue
        try:
            out[id(leaf.node)] = _MERGE[leaf.kind](plan, leaf, entries)
        except LeafError as exc:
            out[id(leaf.node)] = exc
    return out


def _merge_series(plan: ShardPlan, leaf: Leaf, entries: list[dict[str, Any]]) -> ev.Value:
    if any(e["k"] == "mat" for e in entries):
        return _merge_matrix(plan, [e for e in entries if e["k"] == "mat"], union=False)
    samples = [VectorSample(lb, v) for e in entries for lb, v in zip(e["l"], _unpack(e["v"]), strict=True)]
    keyed = sorted(((labels_key(s.labels), s) for s in samples), key=lambda ks: ks[0])
    for (a, _), (b, s) in itertools.pairwise(keyed):
        if a == b:
            raise LeafError(f"vector cannot contain metrics with the same labelset {s.labels} (in {plan.expr.text!r})")
    return [s for _, s in keyed]


def _merge_matrix(plan: ShardPlan, entries: list[dict[str, Any]], union: bool) -> list[SeriesData]:
    """Series of every partition by label set; one label set in two partitions (a subquery's label
    changes) is one series of both's points, unless both have a point at one step: the error the
    subquery raises at that step."""
    by_key: dict[tuple[tuple[str, str], ...], SeriesData] = {}
    for e in entries:
        for labels, ts, values in _matrix_series(e):
            key = labels_key(labels)
            seen = by_key.get(key)
            if seen is None:
                by_key[key] = SeriesData(labels, ts, values)
                continue
            order = np.argsort(np.concatenate([seen.ts, ts]), kind="stable")
            all_ts = np.concatenate([seen.ts, ts])[order]
            if not union and len(all_ts) > 1 and bool((np.diff(all_ts) == 0).any()):
                raise LeafError(f"vector cannot contain metrics with the same labelset {labels} "
                                f"(in {plan.expr.text!r})")
            by_key[key] = SeriesData(seen.labels, all_ts, np.concatenate([seen.values, values])[order])
    return [by_key[k] for k in sorted(by_key)]


def _matrix_series(e: dict[str, Any]) -> list[tuple[dict[str, str], np.ndarray, np.ndarray]]:
    ts, values = _unpack_array(e["t"]), _unpack_array(e["v"])
    out, at = [], 0
    for labels, n in zip(e["l"], e["n"], strict=True):
        out.append((labels, ts[at:at + n], values[at:at + n]))
        at += n
    return out


def _merge_any(plan: ShardPlan, leaf: Leaf, entries: list[dict[str, Any]]) -> ev.Value:
    if not any(e["x"] for e in entries):
        return []
    node = leaf.node
    if isinstance(node, pp.MatrixSelector | pp.SubqueryExpr):
        return [SeriesData({}, np.zeros(1), np.ones(1))]
    return [VectorSample({}, 1.0)]


def _merge_raw(plan: ShardPlan, leaf: Leaf, entries: list[dict[str, Any]]) -> SeriesStore:
    store = SeriesStore(retention=math.inf)
    for series in _merge_matrix(plan, entries, union=True):
        name = series.labels.get(ev.NAME, "")
        store.append(name, series.labels, series.ts, series.values)
    return store


def _merge_agg(plan: ShardPlan, leaf: Leaf, entries: list[dict[str, Any]]) -> ev.Value:
    op = leaf.op
    prometheus3 = plan.expr.semantics == "prometheus3"
    total_n = sum(int(e["n"]) for e in entries)
    if op in ("topk", "bottomk"):
        param = _unpack(entries[0]["p"])[0] if entries else 0.0
        k = min(int(param), total_n)
        if k < 1:
            return []
        candidates: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], list[VectorSample]]] = {}
        for e in entries:
            values = iter(_unpack(e["v"]))
            for gl, members in zip(e["g"], e["m"], strict=True):
                group = candidates.setdefault(labels_key(gl), (gl, []))
                group[1].extend(VectorSample(lb, next(values)) for lb in members)
        out: list[VectorSample] = []
        for key in sorted(candidates):
            members = sorted(candidates[key][1], key=lambda s: labels_key(s.labels))
            out.extend(ev._top_k(members, k, reverse=op == "bottomk"))
        return out
    if op == "quantile":
        param = _unpack(entries[0]["p"])[0] if entries else 0.0
        gathered: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], list[float]]] = {}
        for e in entries:
            values = iter(_unpack(e["v"]))
            for gl, c in zip(e["g"], e["c"], strict=True):
                gathered.setdefault(labels_key(gl), (gl, []))[1].extend(next(values) for _ in range(c))
        return [VectorSample(gathered[k][0], ev.kernels.quantile(param, gathered[k][1])) for k in sorted(gathered)]
    if op in ("stddev", "stdvar") and all("m" in e for e in entries):
        exact: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], list[VectorSample]]] = {}
        for e in entries:
            values = iter(_unpack(e["v"]))
            for gl, labels in zip(e["g"], e["m"], strict=True):
                exact.setdefault(labels_key(gl), (gl, []))[1].extend(VectorSample(lb, next(values)) for lb in labels)
        return [VectorSample(gl, ev._aggregate_values(op, [s.value for s in sorted(group, key=_member_order)],
                                                       0.0, prometheus3))
                for gl, group in (exact[k] for k in sorted(exact))]
    width = _WIDTH[op]
    states: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], list[list[float]]]] = {}
    for e in entries:
        flat = _member_states(op, e, prometheus3) if "m" in e else _unpack(e["s"])
        for j, gl in enumerate(e["g"]):
            states.setdefault(labels_key(gl), (gl, []))[1].append(flat[j * width:(j + 1) * width])
    return [VectorSample(states[k][0], _combine(op, states[k][1], prometheus3)) for k in sorted(states)]


def _member_order(s: VectorSample) -> tuple[tuple[str, str], ...]:
    """The single store's order of a group's members: its selector's series in sorted label sets."""
    return labels_key(s.labels)


def _member_states(op: str, entry: dict[str, Any], prometheus3: bool) -> list[float]:
    """A partition's shipped members made into its moments (when another partition shipped moments)."""
    values = iter(_unpack(entry["v"]))
    return [x for labels in entry["m"] for x in _state(op, [next(values) for _ in labels], prometheus3)]


def _combine(op: str, states: list[list[float]], prometheus3: bool) -> float:
    """One group's value from its partitions' states (in partition order)."""
    present = [s for s in states if s[0] != 0 or op in ("min", "max", "group")]
    if len(present) == 1 and op in ("avg", "stddev", "stdvar"):
        states = present  # one partition holds the whole group: its own exact result below
        if op == "avg":
            return states[0][3]
    if op == "sum":
        if prometheus3:
            total, c = 0.0, 0.0
            for s_total, s_c in states:
                total, c = ev._kahan_inc(s_total, total, c)
                if not math.isinf(total):
                    c += s_c
            return total + c
        total = 0.0
        for s_total, _ in states:
            total += s_total
        return total
    if op in ("count", "count_values"):
        return float(sum(s[0] for s in states))
    if op in ("min", "max"):
        return ev._aggregate_values(op, [s[0] for s in states], 0.0, prometheus3)
    if op == "group":
        return 1.0
    if op == "avg":
        return _combine_avg(states, prometheus3)
    return _combine_variance(op, states, prometheus3)


def _combine_avg(states: list[list[float]], prometheus3: bool) -> float:
    n = sum(s[0] for s in states)
    total, c = 0.0, 0.0
    for _, s_total, s_c, _ in states:
        total, c = ev._kahan_inc(s_total, total, c)
        if not math.isinf(total):
            c += s_c
    if prometheus3 and math.isfinite(total):
        return total / n + c / n  # the evaluator's direct mean while the sum does not overflow
    means = [s[3] for s in states]
    if any(math.isnan(m) for m in means):
        return math.nan
    infinite = {m for m in means if math.isinf(m)}
    if infinite:
        return math.nan if len(infinite) > 1 else infinite.pop()
    return math.fsum(m * (s[0] / n) for m, s in zip(means, states, strict=True))


def _combine_variance(op: str, states: list[list[float]], prometheus3: bool) -> float:
    """Chan et al.'s pairwise update of Welford's moments; non-finite values as the evaluator treats them."""
    n = sum(s[0] for s in states)
    if n == 1:
        first = next(s[4] for s in states if s[0] == 1)
        return math.nan if prometheus3 and not math.isfinite(first) else 0.0
    if any(s[3] for s in states):
        return math.nan
    count, mean, m2 = 0.0, 0.0, 0.0
    for s_n, s_mean, s_m2, _, _ in states:
        if s_n == 0:
            continue
        total = count + s_n
        delta = s_mean - mean
        mean += delta * s_n / total
        m2 += s_m2 + delta * delta * count * s_n / total
        count = total
    return math.sqrt(m2 / count) if op == "stddev" else m2 / count


_MergeFn = Callable[[ShardPlan, Leaf, list[dict[str, Any]]], "ev.Value | SeriesStore"]
_MERGE: dict[LeafKind, _MergeFn] = {
    "series": _merge_series, "agg": _merge_agg, "any": _merge_any, "raw": _merge_raw,
}


# ------------------------------------------------------------------------------------------- the wire


def partials_to_json(p: Partials) -> Any:
    """The partials as JSON (orjson-ready): floats travel as base64 float64 arrays, bit for bit (NaN,
    ±Inf and the staleness marker included)."""
    return p


def partials_from_json(x: Any) -> Partials:
    """Partials read back; a malformed value is a ValueError naming what is wrong."""
    if not isinstance(x, list) or not all(isinstance(e, dict) for e in x):
        raise ValueError(f"partials must be a list of objects, got {type(x).__name__}")
    for e in x:
        if "error" not in e and e.get("k") not in ("vec", "mat", "agg", "any"):
            raise ValueError(f"unknown partial entry kind {e.get('k')!r}")
    return x


def _pack(values: list[float]) -> str:
    return _pack_array(np.asarray(values, dtype=np.float64))


def _pack_array(values: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(values, dtype="<f8").tobytes()).decode("ascii")


def _unpack(text: str) -> list[float]:
    return _unpack_array(text).tolist()


def _unpack_array(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f8").astype(np.float64)
