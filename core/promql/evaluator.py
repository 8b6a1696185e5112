"""A PromQL evaluator over a SeriesStore, matching Prometheus 2.42 (the reference promtool) exactly.

Expressions are parsed by the ``promql-parser`` package; this module checks the supported subset at
parse time (so a rule file fails when loaded, not when first evaluated) and evaluates instant queries
at a given event time. The numeric code follows promql/engine.go, functions.go and quantile.go
line by line where float rounding could differ: results must equal promtool's bit for bit where
practical.

Prometheus 2.42 semantics worth knowing: instant selectors look back 5 minutes *inclusive*
(``[t-5m, t]``), range selectors and subqueries are closed at both ends (``[t-range, t]``), staleness
markers end a series for instant selectors and are skipped inside ranges. Regular expressions are Go
RE2 (core.promql.re2); every function is one entry of ``FUNCTIONS``, the supported list.
"""

from __future__ import annotations

import ast
import functools
import json
import math
import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np
import promql_parser as pp

from watchkeeper.core.errors import CoreError
from watchkeeper.core.promql import duration_expr, extended_ranges, go_math, info_function
from watchkeeper.core.promql import range_kernels as kernels
from watchkeeper.core.promql.re2 import RegexError, compile_re2, go_expand, portable
from watchkeeper.core.promql.series_store import SeriesStore, exact_name
from watchkeeper.core.promql.values import (
    Matcher,
    MatchOpName,
    Scalar,
    SeriesData,
    VectorSample,
    is_stale,
    labels_key,
    stale_mask,
)
from watchkeeper.core.slo.go_format import go_float, go_float_fixed
from watchkeeper.schemas.label_names import is_label_name

NAME = "__name__"
Semantics = Literal["prometheus2", "prometheus3"]
# prometheus3 (the default; Prometheus' own promqltest suite is its reference, `watchkeeper promql test`
# runs it): left-open range selectors, lookback and subquery ranges, regex `.` matching newlines, rate's
# extrapolation order, Kahan-summed sum/avg, atan2 dropping the metric name, holt_winters unknown, the
# `anchored`/`smoothed` modifiers. Not modelled: delayed name removal, __type__/__unit__ labels and start
# timestamps (experimental feature flags of Prometheus 3, on in its test engine). prometheus2: promtool 2.42.
SEMANTICS: tuple[Semantics, ...] = ("prometheus2", "prometheus3")
# What `rules.semantics` and `--semantics` default to (docs/rules.md, "Alert and recording rules").
DEFAULT_SEMANTICS: Semantics = "prometheus3"
DEFAULT_SUBQUERY_STEP = 60.0  # Prometheus' default global evaluation_interval
# Prometheus stores milliseconds; half a millisecond widens a float-seconds window to include its
# closed left end without reaching the previous millisecond.
_HALF_MS = 0.0005


class PromQLError(CoreError):
    """A PromQL expression that does not parse, uses an unsupported construct, or fails to evaluate."""


class LeafError(PromQLError):
    """A leaf value that stands for an error (core.promql.sharding): evaluate() raises it, as a PromQLError
    with the same message, when it reaches the leaf, so a partitioned evaluation fails with the error the
    single-store one would have raised first."""


SUPPORTED_AGGREGATIONS = {
    "sum", "avg", "min", "max", "count", "quantile", "topk", "bottomk", "stddev", "stdvar", "group", "count_values",
    "limitk",
}  # fmt: skip
ARITHMETIC = {"+", "-", "*", "/", "%", "^"}  # these drop the metric name (2.42's shouldDropMetricName)
VALUE_OPERATORS = ARITHMETIC | {"atan2"}  # these compute a new value; atan2 keeps the name in 2.x
COMPARISON = {"==", "!=", ">", "<", ">=", "<="}
SET_OPERATORS = {"and", "or", "unless"}

Value = Scalar | list[VectorSample] | list[SeriesData]
_Labels = dict[str, str]
# Values (or stores) that replace AST nodes, keyed by id(node): the merged results of a partitioned
# evaluation (core.promql.sharding). A SeriesStore under a selector node: that selector reads it.
Leaves = Mapping[int, "Value | SeriesStore | LeafError"]


@dataclass(frozen=True)
class ParsedExpr:
    """A parsed expression known to use only the supported subset.

    ``max_lookback`` is how far back (seconds) from the evaluation time the expression reads, given a
    5-minute lookback: what a SeriesStore must retain for it. ``semantics``: Prometheus 3's (the default:
    left-open, `.` matching a newline; see SEMANTICS) or Prometheus 2's (promtool 2.42's: ranges and
    lookback closed at the left end, regex `.` not matching a newline).
    """

    text: str
    node: Any
    max_lookback: float
    semantics: Semantics = DEFAULT_SEMANTICS
    reads_query: bool = False  # a duration expression reads the query's step or range: parsed per query

    @property
    def dotall(self) -> bool:
        return self.semantics == "prometheus3"


# ---------------------------------------------------------------------------------------------- parsing

_LITERALS = re.compile(r"""(?P<op>[=!]~\s*)?(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)"""
                       r"|\b(?P<old>holt_winters)(?=\s*\()")


def parse(expr: str, semantics: Semantics = DEFAULT_SEMANTICS,
          query: duration_expr.Query | None = None) -> ParsedExpr:
    """Parse with promql-parser, then reject what this evaluator does not support, naming it.

    Every regex (matchers, label_replace) is translated from Go RE2 here, so a bad one fails now.
    ``query``: the step and range of the query, which duration expressions such as `x[step()]` read;
    without it such an expression is checked with a one-minute step and range, and evaluate() parses
    it again for each query (see ParsedExpr.reads_query).
    """
    if semantics not in SEMANTICS:
        raise PromQLError(f"unknown semantics {semantics!r}: use one of {', '.join(SEMANTICS)}")
    dotall = semantics == "prometheus3"
    try:
        reads_query = query is None and duration_expr.reads_query(expr)
        # Prometheus 3's `x[5m+1m]`, `x[step()]`, folded: promql-parser lacks them
        text = duration_expr.rewrite(expr, (60.0, 60.0) if reads_query else query)
        extended = extended_ranges.rewrite(text)  # `anchored`/`smoothed` moved into their selectors
        if extended != text and semantics == "prometheus2":
            raise PromQLError(f"the anchored and smoothed modifiers are Prometheus 3's: use the prometheus3 "
                              f"semantics (in {expr!r})")
        extended = info_function.rewrite(extended)  # info()'s label selector made parsable
        node = pp.parse(_LITERALS.sub(_for_parser if semantics == "prometheus2" else _for_parser_3, extended))
    except (duration_expr.DurationExprError, extended_ranges.ExtendedRangeError, info_function.InfoError) as exc:
        raise PromQLError(f"{exc} (in {expr!r})") from None
    except ValueError as exc:
        raise PromQLError(f"cannot parse PromQL {expr!r}: {exc}") from exc
    if isinstance(_unparen(node), pp.StringLiteral):
        raise _unsupported("a string literal as a rule's result", expr)
    try:
        reach = _check(node, expr, dotall)
    except RegexError as exc:
        raise PromQLError(f"{exc} (in {expr!r})") from None
    return ParsedExpr(text=expr, node=node, max_lookback=reach + 300.0, semantics=semantics,
                      reads_query=reads_query)


@functools.lru_cache(maxsize=256)
def _parse_for_query(expr: str, semantics: Semantics, query: duration_expr.Query) -> ParsedExpr:
    return parse(expr, semantics, query)


def _for_parser_3(m: re.Match[str]) -> str:
    """As _for_parser, but Prometheus 3 no longer knows holt_winters."""
    return m.group(0) if m.group("old") else _for_parser(m)


def _for_parser(m: re.Match[str]) -> str:
    """What promql-parser must see: Prometheus 2's holt_winters under its new name, and matcher regexes
    without the RE2 syntax its Rust regex check refuses (re2.portable: same meaning, other spelling)."""
    if m.group("old"):
        return RENAMED_FUNCTIONS[m.group("old")]
    literal = m.group("str")
    if not m.group("op"):
        return m.group(0)
    try:
        pattern = literal[1:-1] if literal.startswith("`") else str(ast.literal_eval(literal))
    except (ValueError, SyntaxError):
        return m.group(0)  # the parser will say what is wrong with it
    rewritten = portable(pattern)
    return m.group(0) if rewritten == pattern else m.group("op") + json.dumps(rewritten, ensure_ascii=False)


def _unsupported(what: str, expr: str) -> PromQLError:
    return PromQLError(f"{what} is not supported yet (in {expr!r})")


def _label_name_arg(node: Any, what: str, expr: str) -> str:
    name = _string_arg(node)
    if not is_label_name(name):
        raise PromQLError(f"invalid {what} label name {name!r} (in {expr!r})")
    return name


def _check_call(node: Any, expr: str, dotall: bool) -> None:
    """Arguments promql-parser leaves unchecked: label names and regexes in string literals."""
    name, args = node.func.name, node.args
    if name == "label_replace":
        _label_name_arg(args[1], "destination", expr)
        compile_re2(_string_arg(args[4]), dotall)
    elif name == "histogram_quantiles":
        _label_name_arg(args[1], "quantile", expr)
    elif name == "label_join":
        _label_name_arg(args[1], "destination", expr)
        for a in args[3:]:
            _label_name_arg(a, "source", expr)


def _check(node: Any, expr: str, dotall: bool = False) -> float:
    """Validate the subset; return the longest range + offset the expression reads (seconds)."""
    if isinstance(node, pp.NumberLiteral | pp.StringLiteral):
        return 0.0
    if isinstance(node, pp.ParenExpr | pp.UnaryExpr):
        return _check(node.expr, expr, dotall)
    if isinstance(node, pp.SubqueryExpr):
        return _seconds(node.range) + max(0.0, _seconds(node.offset)) + _check(node.expr, expr, dotall)
    if isinstance(node, pp.VectorSelector):
        if node.matchers.or_matchers:
            raise _unsupported("'or' inside label matchers", expr)
        _Evaluation.matchers(node, dotall)
        return max(0.0, _seconds(node.offset))
    if isinstance(node, pp.MatrixSelector):
        # an anchored or smoothed range reads a lookback further back for the sample before its start
        extra = 300.0 if _extension(node.vector_selector) else 0.0
        return _seconds(node.range) + extra + _check(node.vector_selector, expr, dotall)
    if isinstance(node, pp.Call):
        name = node.func.name
        if name not in SUPPORTED_FUNCTIONS:
            raise _unsupported(f"function {name}()", expr)
        for arg in node.args:
            arg = _unparen(arg)
            kind = _extension(arg.vector_selector) if isinstance(arg, pp.MatrixSelector) else None
            if kind is not None and name not in extended_ranges.SAFE_FUNCTIONS[kind]:
                raise PromQLError(f"{kind} modifier can only be used with: "
                                  f"{', '.join(extended_ranges.SAFE_FUNCTIONS[kind])} - not with {name} (in {expr!r})")
        reach = max([_check(a, expr, dotall) for a in node.args], default=0.0)
        _check_call(node, expr, dotall)
        return reach
    if isinstance(node, pp.AggregateExpr):
        op = str(node.op)
        if op not in SUPPORTED_AGGREGATIONS:
            raise _unsupported(f"aggregation {op}", expr)
        if op == "count_values":
            _label_name_arg(node.param, "count_values", expr)
        reach = _check(node.expr, expr, dotall)
        if node.param is not None:
            reach = max(reach, _check(node.param, expr, dotall))
        return reach
    if isinstance(node, pp.BinaryExpr):
        op = str(node.op)
        if op not in VALUE_OPERATORS | COMPARISON | SET_OPERATORS:
            raise _unsupported(f"operator {op}", expr)
        fill = node.modifier.fill_values if node.modifier is not None else None
        if fill is not None and (fill.lhs is not None or fill.rhs is not None) and op in SET_OPERATORS:
            raise PromQLError(f"fill modifiers are not allowed with set operator {op} (in {expr!r})")
        return max(_check(node.lhs, expr, dotall), _check(node.rhs, expr, dotall))
    raise _unsupported(f"expression {type(node).__name__}", expr)


def _seconds(delta: Any) -> float:
    return 0.0 if delta is None else float(delta.total_seconds())


# ------------------------------------------------------------------------------------------- evaluation


def evaluate(expr: ParsedExpr | str, at: float, store: SeriesStore, lookback: float = 300.0,
             subquery_step: float = DEFAULT_SUBQUERY_STEP,
             query_range: tuple[float, float, float] | None = None, leaves: Leaves | None = None) -> Value:
    """Evaluate an instant query at event time ``at`` (epoch seconds), as Prometheus' engine would.

    ``subquery_step`` is the step of a subquery written without one (`x[5m:]`): Prometheus uses the
    global evaluation_interval, promtool the test file's. ``query_range``: the start, end and step of the
    range query this evaluation is a step of, which `@ start()`, `@ end()` and the functions start(),
    end(), range() and step() read (an instant query starts and ends at ``at``, with step 0).
    ``leaves``: values of subtrees computed elsewhere (the partitioned path, core.promql.sharding): a node
    found there is not evaluated, its value is taken (a LeafError is raised); a selector with a SeriesStore
    there reads that store instead of ``store``.
    """
    parsed = parse(expr) if isinstance(expr, str) else expr
    start, end, step = query_range if query_range is not None else (at, at, 0.0)
    if parsed.reads_query:
        parsed = _parse_for_query(parsed.text, parsed.semantics, (step, end - start))
    ev = _Evaluation(at, store, lookback, parsed.text, parsed.dotall, start, subquery_step,
                     parsed.semantics == "prometheus3", end)
    ev.query_step = step
    if leaves:
        ev.leaves = leaves
    return ev.eval(parsed.node)


def evaluate_range(
    expr: ParsedExpr | str, start: float, end: float, step: float, store: SeriesStore,
    subquery_step: float = DEFAULT_SUBQUERY_STEP,
) -> list[SeriesData]:
    """Evaluate at start, start+step, ... end; one SeriesData per output label set (scalars unlabelled)."""
    parsed = parse(expr) if isinstance(expr, str) else expr
    if step <= 0:
        raise PromQLError(f"step must be positive, got {step}")
    points: dict[tuple[tuple[str, str], ...], tuple[_Labels, list[float], list[float]]] = {}
    n = math.floor((end - start) / step + 1e-9) + 1
    for i in range(n):
        t = start + i * step
        result = evaluate(parsed, t, store, subquery_step=subquery_step, query_range=(start, end, step))
        if isinstance(result, Scalar):
            samples = [VectorSample({}, result.value)]
        elif result and isinstance(result[0], SeriesData):
            raise PromQLError(f"range evaluation needs an instant-vector or scalar expression: {parsed.text!r}")
        else:
            samples = result  # type: ignore[assignment]
        for s in samples:
            entry = points.setdefault(labels_key(s.labels), (s.labels, [], []))
            entry[1].append(t)
            entry[2].append(s.value)
    return [SeriesData(labels=lb, ts=np.array(ts), values=np.array(vs)) for lb, ts, vs in points.values()]


def _drop_name(labels: Mapping[str, str], metadata: bool = False) -> _Labels:
    """The labels without the metric name; with ``metadata`` (Prometheus 3) also without the metadata
    labels that describe it, `__type__` and `__unit__` (labels.DropReserved(schema.IsMetadataLabel))."""
    if metadata:
        return {k: v for k, v in labels.items() if k not in _METADATA}
    return {k: v for k, v in labels.items() if k != NAME}


_METADATA = frozenset((NAME, "__type__", "__unit__"))
_NO_LEAVES: Leaves = {}


def _check_unique(vector: list[VectorSample], expr: str) -> list[VectorSample]:
    seen: set[frozenset[tuple[str, str]]] = set()
    for s in vector:
        key = frozenset(s.labels.items())
        if key in seen:
            raise PromQLError(f"vector cannot contain metrics with the same labelset {s.labels} (in {expr!r})")
        seen.add(key)
    return vector


def _to_ms(t: float) -> int:
    return round(t * 1000.0)


class _Evaluation:
    """One instant evaluation: the time, store and lookback shared by every node.

    ``query_time`` is the time of the whole query, which `@ start()` and `@ end()` mean (an instant
    query starts and ends there); ``at`` differs from it inside a subquery's steps.
    """

    def __init__(self, at: float, store: SeriesStore, lookback: float, text: str, dotall: bool = False,
                 query_time: float | None = None, subquery_step: float = DEFAULT_SUBQUERY_STEP,
                 left_open: bool = False, query_end: float | None = None) -> None:
        self.at, self.store, self.lookback, self.text, self.dotall = at, store, lookback, text, dotall
        # Ranges and lookback: Prometheus 2 includes a point exactly at the left end, Prometheus 3 does not.
        # Float seconds hold whole milliseconds; half of one decides the edge without rounding trouble.
        self.left_open = left_open
        self.edge = _HALF_MS if left_open else -_HALF_MS
        self.query_time = at if query_time is None else query_time  # the query's start
        self.query_end = self.query_time if query_end is None else query_end
        self.query_step = 0.0
        self.subquery_step = subquery_step
        self.leaves: Leaves = _NO_LEAVES

    def leaf(self, node: Any) -> Value | None:
        """The value given for ``node`` in ``leaves`` (None: evaluate it); a LeafError is raised."""
        hit = self.leaves.get(id(node))
        if hit is None or isinstance(hit, SeriesStore):
            return None
        if isinstance(hit, LeafError):
            raise PromQLError(str(hit))
        return hit if isinstance(hit, Scalar) else list(hit)  # type: ignore[return-value]

    def reading(self, store: SeriesStore) -> _Evaluation:
        """This evaluation over another store, without leaves: what a subtree planned as raw reads."""
        ev = _Evaluation(self.at, store, self.lookback, self.text, self.dotall, self.query_time, self.subquery_step,
                         self.left_open, self.query_end)
        ev.query_step = self.query_step
        return ev

    def store_for(self, selector: Any) -> SeriesStore:
        """The store a vector selector reads: its own in ``leaves`` (raw partials merged), else the main one."""
        hit = self.leaves.get(id(selector)) if self.leaves else None
        return hit if isinstance(hit, SeriesStore) else self.store

    def base_time(self, at: Any) -> float:
        """The time a selector or subquery reads at, before its offset: its @ modifier's, or now."""
        if at is None:
            return self.at
        if at.type == pp.AtModifierType.At:
            return _to_ms(at.at.timestamp()) / 1000.0
        return self.query_time if at.type == pp.AtModifierType.Start else self.query_end

    def error(self, message: str) -> PromQLError:
        return PromQLError(f"{message} (in {self.text!r})")

    def eval(self, node: Any) -> Value:
        if self.leaves:
            hit = self.leaf(node)
            if hit is not None:
                return hit
            store = self.leaves.get(id(node))
            if isinstance(store, SeriesStore) and not isinstance(node, pp.VectorSelector):
                return self.reading(store).eval(node)
        if isinstance(node, pp.NumberLiteral):
            return Scalar(float(node.val))
        if isinstance(node, pp.ParenExpr):
            return self.eval(node.expr)
        if isinstance(node, pp.UnaryExpr):
            return self.negate(self.eval(node.expr))
        if isinstance(node, pp.VectorSelector):
            return self.instant_selector(node)
        if isinstance(node, pp.MatrixSelector):
            return self.range_selector(node)
        if isinstance(node, pp.SubqueryExpr):
            return self.subquery(node)
        if isinstance(node, pp.Call):
            return self.call(node)
        if isinstance(node, pp.AggregateExpr):
            return self.aggregate(node)
        if isinstance(node, pp.BinaryExpr):
            return self.binary(node)
        raise self.error(f"cannot evaluate {type(node).__name__}")

    def vector(self, node: Any) -> list[VectorSample]:
        value = self.eval(node)
        if isinstance(value, Scalar) or (value and isinstance(value[0], SeriesData)):
            raise self.error("expected an instant vector")
        return value  # type: ignore[return-value]

    def scalar(self, node: Any) -> float:
        value = self.eval(node)
        if not isinstance(value, Scalar):
            raise self.error("expected a scalar")
        return value.value

    def negate(self, value: Value) -> Value:
        if isinstance(value, Scalar):
            return Scalar(-value.value)
        # the name goes: two series differing only by it collide (an error in 2.42 and 3.x alike)
        return _check_unique([VectorSample(self.drop_name(s.labels), -s.value) for s in value],  # type: ignore[union-attr]
                             self.text)

    # -- selectors

    @staticmethod
    def matchers(node: Any, dotall: bool = False) -> list[Matcher]:
        out = [Matcher(m.name, match_op_name(m.op), m.value, dotall) for m in node.matchers.matchers
               if m.name not in extended_ranges.MARKERS and m.name != info_function.MARKER]
        if node.name:
            out.append(Matcher(NAME, "=", node.name))
        return out

    def instant_selector(self, node: Any) -> list[VectorSample]:
        ref = self.base_time(node.at) - _seconds(node.offset)
        if _extension(node) == "smoothed":
            return self.smoothed_selector(node, ref)
        matchers = self.matchers(node, self.dotall)
        start = ref - self.lookback + self.edge
        store = self.store_for(node)

        def select() -> tuple[list[VectorSample], int]:
            latest = store.latest(matchers, start, ref)
            vec = [VectorSample(labels, value) for labels, value in latest if value == value or not is_stale(value)]
            return vec, len(vec)

        # Shared by every rule reading this selector at this time (see SeriesStore.memo)
        return list(store.memo(exact_name(matchers), ("instant", *matchers, start, ref), select))

    def smoothed_selector(self, node: Any, ref: float) -> list[VectorSample]:
        """`x smoothed`: each series' value interpolated at ``ref`` from the samples within a lookback
        either side (engine.go smoothSeries); the name is kept."""
        out = []
        for series in self.store_for(node).select(self.matchers(node, self.dotall), ref - self.lookback,
                                                  ref + self.lookback):
            fresh = ~stale_mask(series.values)
            ts = np.rint(series.ts[fresh] * 1000.0).astype(np.int64)
            value = extended_ranges.smoothed_value(ts, series.values[fresh], _to_ms(ref))
            if value is not None:
                out.append(VectorSample(series.labels, value))
        return out

    def matrix(self, node: Any) -> list[SeriesData]:
        node = _unparen(node)
        return self.subquery(node) if isinstance(node, pp.SubqueryExpr) else self.range_selector(node)

    def subquery(self, node: Any) -> list[SeriesData]:
        """`expr[range:step]`: expr evaluated at every multiple of step in [t - offset - range, t - offset]
        (left-open in Prometheus 3); one series per label set, points where expr had a value."""
        if self.leaves:
            hit = self.leaf(node)
            if hit is not None:
                return hit  # type: ignore[return-value]
        step_ms = _to_ms(_seconds(node.step) if node.step is not None else self.subquery_step)
        if step_ms <= 0:
            raise self.error("a subquery needs a positive step")
        end_ms = _to_ms(self.base_time(node.at)) - _to_ms(_seconds(node.offset))
        start_ms = end_ms - _to_ms(_seconds(node.range))
        # the first multiple of step in the range: at or after its start (2.x), strictly after (3.x)
        first_ms = (start_ms // step_ms + 1) * step_ms if self.left_open else -(-start_ms // step_ms) * step_ms
        points: dict[tuple[tuple[str, str], ...], tuple[_Labels, list[float], list[float]]] = {}
        for t_ms in range(first_ms, end_ms + 1, step_ms):
            inner = _Evaluation(t_ms / 1000.0, self.store, self.lookback, self.text, self.dotall, self.query_time,
                                self.subquery_step, self.left_open, self.query_end)
            inner.query_step = self.query_step
            inner.leaves = self.leaves
            value = inner.eval(node.expr)
            if isinstance(value, Scalar):
                samples = [VectorSample({}, value.value)]
            elif value and isinstance(value[0], SeriesData):
                raise self.error("a subquery needs an instant-vector or scalar expression")
            else:
                samples = _check_unique(value, self.text)  # type: ignore[arg-type]
            for s in samples:
                entry = points.setdefault(labels_key(s.labels), (s.labels, [], []))
                entry[1].append(t_ms / 1000.0)
                entry[2].append(s.value)
        return [SeriesData(lb, np.array(ts), np.array(vs)) for lb, ts, vs in points.values()]

    def range_selector(self, node: Any) -> list[SeriesData]:
        if self.leaves:
            hit = self.leaf(node)
            if hit is not None:
                return hit  # type: ignore[return-value]
        vs = node.vector_selector
        end = self.base_time(vs.at) - _seconds(vs.offset)
        start = end - _seconds(node.range)
        kind = _extension(vs)
        if kind is not None:
            return self.extended_range_selector(node, kind, start, end)
        out = []
        for series in self.store_for(vs).select(self.matchers(vs, self.dotall), start + self.edge, end):
            fresh = ~stale_mask(series.values)
            if fresh.any():
                out.append(SeriesData(series.labels, series.ts[fresh], series.values[fresh]))
        return out

    def extended_range_selector(self, node: Any, kind: extended_ranges.Extension, start: float,
                                end: float) -> list[SeriesData]:
        """A bare anchored/smoothed range (engine.go matrixSelector + extendFloats): the points in the
        range plus the values at its two ends, as points at its start and end."""
        smoothed = kind == "smoothed"
        out = []
        vs = node.vector_selector
        for series in self.store_for(vs).select(self.matchers(vs, self.dotall), start - self.lookback,
                                                end + (self.lookback if smoothed else 0.0)):
            fresh = ~stale_mask(series.values)
            ts = np.rint(series.ts[fresh] * 1000.0).astype(np.int64)
            t, v = extended_ranges.extend_floats(ts, series.values[fresh], _to_ms(start), _to_ms(end), smoothed)
            if len(t):
                out.append(SeriesData(series.labels, t / 1000.0, v))
        return out

    def extended_range_call(self, name: str, node: Any, kind: extended_ranges.Extension) -> list[VectorSample]:
        """rate/increase/delta/changes/resets of an anchored or smoothed range (functions.go
        extendedRate, pickFirstSampleIndices), one series at a time."""
        vs = node.vector_selector
        end_ms = _to_ms(self.base_time(vs.at)) - _to_ms(_seconds(vs.offset))
        start_ms = end_ms - _to_ms(_seconds(node.range))
        smoothed = kind == "smoothed"
        out = []
        for series in self.store_for(vs).select(self.matchers(vs, self.dotall), start_ms / 1000.0 - self.lookback,
                                                end_ms / 1000.0 + (self.lookback if smoothed else 0.0)):
            fresh = ~stale_mask(series.values)
            ts = np.rint(series.ts[fresh] * 1000.0).astype(np.int64)
            values = series.values[fresh]
            result: float | None
            if name in ("changes", "resets"):
                first = extended_ranges.anchored_start(ts, start_ms)
                if first is None:
                    continue
                packed = kernels.Packed.of([ts[first:] / 1000.0], [values[first:]])
                result = float(kernels.value_changes(packed, resets=name == "resets")[0])
            else:
                result = extended_ranges.extended_rate(
                    ts, values, start_ms, end_ms, _seconds(node.range), smoothed,
                    is_counter=name != "delta", is_rate=name == "rate")
            if result is not None:
                out.append(VectorSample(self.drop_name(series.labels), result))
        return out

    # -- functions: every supported function is an entry of FUNCTIONS (below the class)

    def call(self, node: Any) -> Value:
        name = node.func.name
        result = FUNCTIONS[name](self, node.args)
        if isinstance(result, list) and name not in RANGE_KERNELS:  # range_call checks its own
            _check_unique(result, self.text)  # type: ignore[arg-type]
        return result

    def fn_time(self, args: list[Any]) -> Value:
        return Scalar(self.at)

    def fn_pi(self, args: list[Any]) -> Value:
        return Scalar(math.pi)

    # The query's own times (Prometheus 3's duration-expression functions): an instant query starts and
    # ends at its time, with step 0.
    def fn_start(self, args: list[Any]) -> Value:
        return Scalar(self.query_time)

    def fn_end(self, args: list[Any]) -> Value:
        return Scalar(self.query_end)

    def fn_range(self, args: list[Any]) -> Value:
        return Scalar(self.query_end - self.query_time)

    def fn_step(self, args: list[Any]) -> Value:
        return Scalar(self.query_step)

    def fn_min_of(self, args: list[Any]) -> Value:
        return Scalar(_go_min(self.scalar(args[0]), self.scalar(args[1])))

    def fn_max_of(self, args: list[Any]) -> Value:
        return Scalar(_go_max(self.scalar(args[0]), self.scalar(args[1])))

    def fn_vector(self, args: list[Any]) -> Value:
        return [VectorSample({}, self.scalar(args[0]))]

    def fn_scalar(self, args: list[Any]) -> Value:
        vec = self.vector(args[0])
        return Scalar(vec[0].value if len(vec) == 1 else math.nan)

    def fn_absent(self, args: list[Any]) -> Value:
        return [] if self.vector(args[0]) else [VectorSample(_absent_labels(args[0]), 1.0)]

    def fn_absent_over_time(self, args: list[Any]) -> Value:
        present = self.matrix(args[0])
        return [] if present else [VectorSample(_absent_labels(_unparen(args[0])), 1.0)]

    def fn_histogram_quantiles(self, args: list[Any]) -> Value:
        """Prometheus 3's histogram_quantiles(v, "label", q1, q2...): histogram_quantile for each q, told
        apart by the label (q in OpenMetrics' float format, `0.0`, `0.25`, `1.0`)."""
        label, vec = _string_arg(args[1]), self.vector(args[0])
        out = []
        for q in (self.scalar(a) for a in args[2:]):
            text = go_float(q)
            if not any(c in text for c in "e.NI"):
                text += ".0"
            out += [VectorSample({**s.labels, label: text}, s.value) for s in _histogram_quantile(q, vec)]
        return out

    def fn_info(self, args: list[Any]) -> Value:
        """info(v [, {selector}]) (promql/info.go): the info series are read as of the time of v's first
        selector (its @ and offset, and those of the subqueries around it), with a lookback."""
        base = self.vector(args[0])
        ref = self.info_time(args[0])
        data: dict[str, list[Matcher]] = {}
        names: list[Matcher] = []
        if len(args) > 1:
            for m in self.matchers(_unparen(args[1]), self.dotall):
                data.setdefault(m.name, []).append(m)
                if m.name == NAME:
                    names.append(m)
        effective = info_function.effective_name_matchers(names, self.dotall)
        ignored = {i for i, s in enumerate(base) if all(m.matches({NAME: s.labels.get(NAME, "")}) for m in effective)}
        wanted: dict[str, set[str]] = {}
        for i, s in enumerate(base):
            if i not in ignored:
                for label in info_function.IDENTIFYING_LABELS:
                    if s.labels.get(label):
                        wanted.setdefault(label, set()).add(s.labels[label])
        data_matchers = [m for ms in data.values() for m in ms if m.name != NAME]
        data = {k: v for k, v in data.items() if k != NAME}
        infos: list[tuple[dict[str, str], float]] = []
        if wanted:
            found = self.store.latest_points([*data_matchers, *effective], ref - self.lookback + self.edge, ref)
            infos = [(labels, ts) for labels, ts, value in found if not is_stale(value)
                     and all(labels.get(k) in vs for k, vs in wanted.items())]
        try:
            return info_function.enrich(base, infos, ignored, data)
        except info_function.InfoError as exc:
            raise self.error(str(exc)) from None

    def info_time(self, node: Any) -> float:
        """infoSelectTimestampAndOffset: the first vector selector's @ time (or the innermost @ of the
        subqueries around it, else now) minus the offsets from it up to that @."""
        path: list[Any] = []

        def first_selector(n: Any) -> Any:
            n = _unparen(n)
            if isinstance(n, pp.VectorSelector):
                return n
            children: list[Any] = []
            if isinstance(n, pp.MatrixSelector):
                children = [n.vector_selector]
            elif isinstance(n, pp.SubqueryExpr | pp.UnaryExpr):
                children = [n.expr]
            elif isinstance(n, pp.Call):
                children = list(n.args)
            elif isinstance(n, pp.AggregateExpr):
                children = [c for c in (n.param, n.expr) if c is not None]
            elif isinstance(n, pp.BinaryExpr):
                children = [n.lhs, n.rhs]
            path.append(n)
            for c in children:
                found = first_selector(c)
                if found is not None:
                    return found
            path.pop()
            return None

        vs = first_selector(node)
        if vs is None:
            return self.at
        offset, at = _seconds(vs.offset), vs.at
        for outer in reversed(path):
            if at is not None:
                break
            if isinstance(outer, pp.SubqueryExpr):
                offset += _seconds(outer.offset)
                at = outer.at
        return self.base_time(at) - offset

    def fn_histogram_quantile(self, args: list[Any]) -> Value:
        return _histogram_quantile(self.scalar(args[0]), self.vector(args[1]))

    def map_values(self, args: list[Any], fn: Callable[[float], float]) -> list[VectorSample]:
        """simpleFunc: a function of each value; the metric name is dropped."""
        return [VectorSample(self.drop_name(s.labels), fn(s.value)) for s in self.vector(args[0])]

    def fn_clamp(self, args: list[Any]) -> Value:
        lo, hi = self.scalar(args[1]), self.scalar(args[2])
        if hi < lo:
            return []
        return self.map_values(args, lambda v: _go_max(lo, _go_min(hi, v)))

    def fn_clamp_min(self, args: list[Any]) -> Value:
        lo = self.scalar(args[1])
        return self.map_values(args, lambda v: _go_max(lo, v))

    def fn_clamp_max(self, args: list[Any]) -> Value:
        hi = self.scalar(args[1])
        return self.map_values(args, lambda v: _go_min(hi, v))

    def fn_round(self, args: list[Any]) -> Value:
        inverse = 1.0 / (self.scalar(args[1]) if len(args) > 1 else 1.0)
        return self.map_values(args, lambda v: float(np.floor(v * inverse + 0.5)) / inverse)

    def fn_timestamp(self, args: list[Any]) -> Value:
        """The sample's own time for a selector argument (engine.go special-cases it), else the eval time."""
        arg = _unparen(args[0])
        if isinstance(arg, pp.VectorSelector):
            ref = self.base_time(arg.at) - _seconds(arg.offset)
            found = self.store_for(arg).latest_points(self.matchers(arg, self.dotall), ref - self.lookback + self.edge,
                                                      ref)
            return [VectorSample(self.drop_name(labels), _to_ms(ts) / 1000.0)
                    for labels, ts, value in found if not is_stale(value)]
        return self.map_values(args, lambda _: _to_ms(self.at) / 1000.0)

    def fn_date(self, args: list[Any], part: Callable[[int], float]) -> Value:
        """dateWrapper: the eval time without an argument, else each value read as Unix seconds (UTC)."""
        if not args:
            ms = _to_ms(self.at)
            return [VectorSample({}, part(abs(ms) // 1000 * (1 if ms >= 0 else -1)))]  # Go's ms / 1000 truncates
        return self.map_values(args, lambda v: part(int(v)) if math.isfinite(v) else math.nan)

    def fn_sort(self, args: list[Any], descending: bool) -> Value:
        """sort/sort_desc: by value, NaN last either way."""
        vec = self.vector(args[0])
        numbers = sorted((s for s in vec if not math.isnan(s.value)), key=lambda s: s.value, reverse=descending)
        return numbers + [s for s in vec if math.isnan(s.value)]

    def fn_sort_by_label(self, args: list[Any], descending: bool) -> Value:
        """Prometheus 3's sort_by_label(_desc): natural order of the named labels, then the full label set."""
        names = [_string_arg(a) for a in args[1:]]
        return sorted(self.vector(args[0]), reverse=descending,
                      key=lambda s: ([_natural_key(s.labels.get(n, "")) for n in names], labels_key(s.labels)))

    def fn_label_replace(self, args: list[Any]) -> Value:
        dst, repl, src, pattern = (_string_arg(a) for a in args[1:5])
        regex = compile_re2(pattern, self.dotall)
        out = []
        for s in self.vector(args[0]):
            m = regex.fullmatch(s.labels.get(src, ""))
            if m is None:
                out.append(s)
                continue
            labels = {k: v for k, v in s.labels.items() if k != dst}
            value = go_expand(repl, m)
            if value:
                labels[dst] = value
            out.append(VectorSample(labels, s.value))
        return out

    def fn_label_join(self, args: list[Any]) -> Value:
        dst, sep = _string_arg(args[1]), _string_arg(args[2])
        sources = [_string_arg(a) for a in args[3:]]
        out = []
        for s in self.vector(args[0]):
            joined = sep.join(s.labels.get(name, "") for name in sources)
            labels = {k: v for k, v in s.labels.items() if k != dst}
            if joined:
                labels[dst] = joined
            out.append(VectorSample(labels, s.value))
        return out

    def range_call(self, name: str, args: list[Any]) -> Value:
        """Range-vector functions, computed for all selected series at once (see range_kernels)."""
        matrix_arg = _unparen(args[1] if name == "quantile_over_time" else args[0])
        source = matrix_arg if isinstance(matrix_arg, pp.SubqueryExpr) else matrix_arg.vector_selector
        kind = None if isinstance(matrix_arg, pp.SubqueryExpr) else _extension(source)
        if kind is not None:
            return self.extended_range_call(name, matrix_arg, kind)
        range_s = _seconds(matrix_arg.range)
        at_ms = _to_ms(self.at)
        range_end = _to_ms(self.base_time(source.at)) - _to_ms(_seconds(source.offset))
        range_start = range_end - _to_ms(range_s)
        keep_name = name in ("last_over_time", "first_over_time")  # they return a sample, not a new value

        def compute(labels: list[Mapping[str, str]], packed: kernels.Packed) -> list[VectorSample]:
            """The function's value per series; `labels` are those of the result (shared, read-only)."""
            window = _Window(packed, range_start, range_end, range_s, at_ms)
            values, defined = RANGE_KERNELS[name](self, window, args)
            ok = packed.nonempty() if defined is None else defined & packed.nonempty()
            return [VectorSample(lb, value)  # type: ignore[arg-type]
                    for lb, value, kept in zip(labels, values.tolist(), ok.tolist(), strict=True) if kept]

        if isinstance(matrix_arg, pp.SubqueryExpr):
            series = self.subquery(matrix_arg)
            if not series:
                return []
            out = compute([dict(s.labels) if keep_name else self.drop_name(s.labels) for s in series],
                          kernels.Packed.of([s.ts for s in series], [s.values for s in series]))
            return out if keep_name else _check_unique(out, self.text)
        # Rules reading one selector over one range at one tick share its packed windows, and the result
        # when the function reads nothing else (`rate(x[5m])` recorded and alerted on): SeriesStore.memo.
        matchers = self.matchers(source, self.dotall)
        metric = exact_name(matchers)
        store = self.store_for(source)
        lo, hi = range_end / 1000 - range_s + self.edge, range_end / 1000

        def pack() -> tuple[tuple[list[Mapping[str, str]], kernels.Packed], int]:
            windows = store.windows(matchers, lo, hi)
            packed = kernels.Packed.of([w[2] for w in windows], [w[3] for w in windows])
            # The store's own label maps, with or without the name: never changed by anyone downstream
            # (Prometheus 3 also drops __type__ and __unit__ with the name: a new map then)
            labels = [w[0] if keep_name else self.drop_name(w[0]) if self.left_open else w[1] for w in windows]
            return (labels, packed), packed.values.size + len(windows)

        def result() -> tuple[list[VectorSample], int]:
            labels, packed = store.memo(metric, ("windows", keep_name, self.left_open, *matchers, lo, hi), pack)
            out = compute(labels, packed) if labels else []
            return out, len(out)

        if len(args) == 1:
            out = list(store.memo(metric, (name, self.left_open, *matchers, lo, hi, range_start, range_end,
                                                range_s, at_ms), result))
        else:
            out = result()[0]
        # One metric name: dropping it (alone) cannot make two of the store's distinct label sets equal.
        return out if keep_name or (metric is not None and not self.left_open) else _check_unique(out, self.text)

    # -- aggregations

    def aggregate(self, node: Any) -> list[VectorSample]:
        op = str(node.op)
        vec = self.vector(node.expr)
        modifier = node.modifier
        without = modifier is not None and modifier.type == pp.AggModifierType.Without
        grouping = list(modifier.labels) if modifier is not None else []
        param = 0.0
        if op == "count_values":
            # Each value becomes a label (strconv.FormatFloat 'f', -1) and part of the group (engine.go).
            value_label = _string_arg(node.param)
            vec = [VectorSample({**s.labels, value_label: _go_format_f(s.value)}, s.value) for s in vec]
            if not without:
                grouping = sorted({*grouping, value_label})
        elif node.param is not None:
            param = self.scalar(node.param)

        groups = group_samples(vec, grouping, without)

        out: list[VectorSample] = []
        if op in ("topk", "bottomk", "limitk"):
            if math.isnan(param) or abs(param) >= 2.0**63:
                raise self.error(f"Scalar value {param} overflows int64")
            k = min(int(param), len(vec))
            if k < 1:
                return []
            for _, members in groups.values():
                out.extend(members[:k] if op == "limitk" else _top_k(members, k, reverse=op == "bottomk"))
            return out
        for gl, members in groups.values():
            values = [s.value for s in members]
            out.append(VectorSample(gl, _aggregate_values(op, values, param, prometheus3=self.left_open)))
        return out

    # -- binary operators

    def binary(self, node: Any) -> Value:
        op = str(node.op)
        modifier = node.modifier
        return_bool = bool(modifier is not None and modifier.return_bool)
        lhs = self.eval(node.lhs)
        rhs = self.eval(node.rhs)
        if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
            value, keep = _elem_binop(op, lhs.value, rhs.value)
            if op in COMPARISON:
                value = 1.0 if keep else 0.0
            return Scalar(value)
        if isinstance(lhs, Scalar) or isinstance(rhs, Scalar):
            return _check_unique(self.vector_scalar(op, lhs, rhs, return_bool, self.drops_name(op), self.left_open),
                                 self.text)
        lvec, rvec = lhs, rhs
        matching = _Matching.of(modifier, op)
        if op in SET_OPERATORS:
            return _set_operation(op, lvec, rvec, matching)  # type: ignore[arg-type]
        fill = modifier.fill_values if modifier is not None else None
        fills = (fill.lhs, fill.rhs) if fill is not None else (None, None)
        return _check_unique(self.vector_vector(op, lvec, rvec, matching, return_bool, fills),  # type: ignore[arg-type]
                             self.text)

    def drop_name(self, labels: Mapping[str, str]) -> _Labels:
        return _drop_name(labels, metadata=self.left_open)

    def drops_name(self, op: str) -> bool:
        """shouldDropMetricName: arithmetic, and atan2 too since Prometheus 3."""
        return op in ARITHMETIC or (op == "atan2" and self.left_open)

    @staticmethod
    def vector_scalar(op: str, lhs: Value, rhs: Value, return_bool: bool, drop_name: bool,
                      metadata: bool = False) -> list[VectorSample]:
        swap = isinstance(lhs, Scalar)
        vec: list[VectorSample] = rhs if swap else lhs  # type: ignore[assignment]
        scalar: float = lhs.value if swap else rhs.value  # type: ignore[union-attr]
        samples = np.array([s.value for s in vec], dtype=np.float64)
        other = np.full(len(samples), scalar)
        values, keep = _binop_arrays(op, other, samples) if swap else _binop_arrays(op, samples, other)
        if op in COMPARISON and swap:
            values = samples  # the vector's value is kept even when the scalar is on the left
        if return_bool:
            values, keep = keep.astype(np.float64), np.ones(len(samples), dtype=bool)
        drop = drop_name or return_bool
        return [
            VectorSample(_drop_name(s.labels, metadata) if drop else s.labels, value)
            for s, value, kept in zip(vec, values.tolist(), keep.tolist(), strict=True)
            if kept
        ]

    def vector_vector(self, op: str, lhs: list[VectorSample], rhs: list[VectorSample], matching: _Matching,
                      return_bool: bool, fills: tuple[float | None, float | None] = (None, None)
                      ) -> list[VectorSample]:
        """Vector matching. ``fills``: the fill_left/fill_right values (Prometheus 3's experimental fill
        modifiers): a series missing on that side is matched with one of that value, labelled with its
        match group; as in engine.go, sides are those after group_right swaps them."""
        one_to_many = matching.card == "one-to-many"
        if one_to_many:
            lhs, rhs = rhs, lhs
        right: dict[Hashable, VectorSample] = {}
        for rs in rhs:
            sig = matching.signature(rs.labels)
            if sig in right:
                side = "left" if one_to_many else "right"
                group = matching.group_labels(rs.labels)
                raise self.error(
                    f"found duplicate series for the match group {group} on the {side} hand-side of the "
                    f"operation: [{rs.labels}, {right[sig].labels}];many-to-many matching not allowed: "
                    "matching labels must be unique on one side")
            right[sig] = rs
        pairs: list[tuple[Hashable, VectorSample, VectorSample]] = []
        fill_left, fill_right = fills
        left_sigs = set()
        for ls in lhs:
            sig = matching.signature(ls.labels)
            left_sigs.add(sig)
            found = right.get(sig)
            if found is None and fill_right is not None:
                found = VectorSample(matching.group_labels(ls.labels), fill_right)
            if found is not None:
                pairs.append((sig, ls, found))
        if fill_left is not None:
            pairs += [(sig, VectorSample(matching.group_labels(rs.labels), fill_left), rs)
                      for sig, rs in right.items() if sig not in left_sigs]
        # Undo the swap for one-to-many so the operator sees the original left and right values.
        left_values = np.array([(rs.value if one_to_many else ls.value) for _, ls, rs in pairs], dtype=np.float64)
        right_values = np.array([(ls.value if one_to_many else rs.value) for _, ls, rs in pairs], dtype=np.float64)
        values, keep = _binop_arrays(op, left_values, right_values)
        if self.left_open and matching.card == "one-to-one" and len({sig for sig, _, _ in pairs}) < len(pairs):
            # Prometheus 3 finds many-to-one matches before a comparison filters them away; 2.42 after
            raise self.error("multiple matches for labels: many-to-one matching must be explicit "
                             "(group_left/group_right)")
        matched: dict[Hashable, set[frozenset[tuple[str, str]]]] = {}
        out = []
        for (sig, ls, found), value, kept in zip(pairs, values.tolist(), keep.tolist(), strict=True):
            if return_bool:
                value = 1.0 if kept else 0.0
            elif not kept:
                continue
            metric = matching.result_labels(ls.labels, found.labels, self.drops_name(op), self.left_open)
            if return_bool:
                metric = self.drop_name(metric)
            if matching.card == "one-to-one":
                if sig in matched:
                    raise self.error("multiple matches for labels: many-to-one matching must be explicit "
                                     "(group_left/group_right)")
                matched[sig] = set()
            else:
                inserted = matched.setdefault(sig, set())
                key = frozenset(metric.items())
                if key in inserted:
                    raise self.error("multiple matches for labels: grouping labels must ensure unique matches")
                inserted.add(key)
            out.append(VectorSample(metric, value))
        return out


def group_samples(vec: list[VectorSample], grouping: list[str], without: bool
                  ) -> dict[Hashable, tuple[_Labels, list[VectorSample]]]:
    """An aggregation's groups, in order of first member: `by (grouping)` or `without (grouping)` (and the
    metric name). Also what the sharding core groups partial aggregations by (`core.promql.sharding`).
    Keys need no sorting: label values in grouping order for `by`, a frozenset for `without`."""
    drop = {*grouping, NAME}
    groups: dict[Hashable, tuple[_Labels, list[VectorSample]]] = {}
    one = grouping[0] if len(grouping) == 1 and not without else None  # `by (job)`: the value is the key
    for s in vec:
        key: Hashable
        if without:
            key = frozenset((k, v) for k, v in s.labels.items() if k not in drop)
        elif one is not None:
            key = s.labels.get(one, "")
        else:
            key = tuple([s.labels.get(k, "") for k in grouping])
        group = groups.get(key)
        if group is None:
            if without:
                gl = {k: v for k, v in s.labels.items() if k not in drop}
            else:
                gl = {k: s.labels[k] for k in grouping if k in s.labels}
            group = groups[key] = (gl, [])
        group[1].append(s)
    return groups


@dataclass(frozen=True)
class _Window:
    """The packed windows of a range function's selector, with the range in Prometheus' milliseconds."""

    packed: kernels.Packed
    start_ms: int
    end_ms: int
    range_s: float
    at_ms: int


_RangeResult = tuple[np.ndarray, np.ndarray | None]  # values, and which are defined (None: every nonempty one)


def _rate_kernel(is_counter: bool, is_rate: bool) -> Callable[[_Evaluation, _Window, list[Any]], _RangeResult]:
    def kernel(ev: _Evaluation, w: _Window, args: list[Any]) -> _RangeResult:
        return kernels.extrapolated_rate(w.packed, w.start_ms, w.end_ms, w.range_s, is_counter, is_rate,
                                         threshold_first=ev.left_open)
    return kernel


def _predict_linear(ev: _Evaluation, w: _Window, args: list[Any]) -> _RangeResult:
    horizon = ev.scalar(args[1])
    slope, intercept = kernels.linear_regression(w.packed, np.full(len(w.packed.lens), w.at_ms, dtype=np.int64))
    return slope * horizon + intercept, w.packed.lens >= 2


def _quantile_over_time(ev: _Evaluation, w: _Window, args: list[Any]) -> _RangeResult:
    q, p = ev.scalar(args[0]), w.packed
    return np.array([kernels.quantile(q, p.values[i, : p.lens[i]].tolist()) for i in range(len(p.lens))]), None


def _smoothing(ev: _Evaluation, w: _Window, args: list[Any]) -> _RangeResult:
    sf, tf = ev.scalar(args[1]), ev.scalar(args[2])
    if not 0 < sf < 1:
        raise ev.error(f"invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:f}")
    if not 0 < tf < 1:
        raise ev.error(f"invalid trend factor. Expected: 0 < tf < 1, got: {tf:f}")
    return kernels.double_exponential_smoothing(w.packed, sf, tf)


_RangeKernel = Callable[[_Evaluation, _Window, list[Any]], _RangeResult]


def _values_only(fn: Callable[[kernels.Packed], np.ndarray]) -> _RangeKernel:
    return lambda ev, w, args: (fn(w.packed), None)


RANGE_KERNELS: dict[str, _RangeKernel] = {
    "rate": _rate_kernel(is_counter=True, is_rate=True),
    "increase": _rate_kernel(is_counter=True, is_rate=False),
    "delta": _rate_kernel(is_counter=False, is_rate=False),
    "irate": lambda ev, w, args: kernels.instant_rate(w.packed),
    "idelta": lambda ev, w, args: kernels.instant_delta(w.packed),
    "deriv": lambda ev, w, args: (kernels.linear_regression(w.packed, w.packed.ts[:, 0])[0], w.packed.lens >= 2),
    "predict_linear": _predict_linear,
    "sum_over_time": _values_only(kernels.sum_over_time),
    "avg_over_time": lambda ev, w, args: (_avg_over_time_3(w.packed) if ev.left_open
                                          else kernels.avg_over_time(w.packed), None),
    "max_over_time": _values_only(lambda p: kernels.extreme_over_time(p, largest=True)),
    "min_over_time": _values_only(lambda p: kernels.extreme_over_time(p, largest=False)),
    "count_over_time": _values_only(lambda p: p.lens.astype(np.float64)),
    "last_over_time": _values_only(lambda p: p.last()[1]),
    "first_over_time": _values_only(lambda p: p.values[:, 0]),
    "ts_of_first_over_time": _values_only(lambda p: p.ts[:, 0] / 1000.0),
    "ts_of_last_over_time": _values_only(lambda p: p.last()[0] / 1000.0),
    "ts_of_max_over_time": _values_only(lambda p: kernels.ts_of_extreme_over_time(p, largest=True)),
    "ts_of_min_over_time": _values_only(lambda p: kernels.ts_of_extreme_over_time(p, largest=False)),
    "present_over_time": _values_only(lambda p: np.ones(len(p.lens))),
    "stdvar_over_time": _values_only(kernels.variance_over_time),
    "stddev_over_time": _values_only(lambda p: np.sqrt(kernels.variance_over_time(p))),
    "mad_over_time": _values_only(kernels.mad_over_time),
    "quantile_over_time": _quantile_over_time,
    "changes": _values_only(lambda p: kernels.value_changes(p, resets=False)),
    "resets": _values_only(lambda p: kernels.value_changes(p, resets=True)),
    "double_exponential_smoothing": _smoothing,
}


def _simple(fn: Callable[[float], float]) -> Callable[[_Evaluation, list[Any]], Value]:
    return lambda ev, args: ev.map_values(args, fn)


def _date(part: Callable[[int], float]) -> Callable[[_Evaluation, list[Any]], Value]:
    return lambda ev, args: ev.fn_date(args, part)


def _range(name: str) -> Callable[[_Evaluation, list[Any]], Value]:
    return lambda ev, args: ev.range_call(name, args)


# The supported functions ARE this table (promql/functions.go's FunctionCalls): parse() refuses any other
# name, and the README's list is checked against it.
FUNCTIONS: dict[str, Callable[[_Evaluation, list[Any]], Value]] = {
    **{name: _range(name) for name in RANGE_KERNELS},
    "absent_over_time": _Evaluation.fn_absent_over_time,
    "time": _Evaluation.fn_time,
    "pi": _Evaluation.fn_pi,
    "start": _Evaluation.fn_start,
    "end": _Evaluation.fn_end,
    "range": _Evaluation.fn_range,
    "step": _Evaluation.fn_step,
    "min_of": _Evaluation.fn_min_of,
    "max_of": _Evaluation.fn_max_of,
    "vector": _Evaluation.fn_vector,
    "scalar": _Evaluation.fn_scalar,
    "absent": _Evaluation.fn_absent,
    "histogram_quantile": _Evaluation.fn_histogram_quantile,
    "histogram_quantiles": _Evaluation.fn_histogram_quantiles,
    "info": _Evaluation.fn_info,
    "clamp": _Evaluation.fn_clamp,
    "clamp_min": _Evaluation.fn_clamp_min,
    "clamp_max": _Evaluation.fn_clamp_max,
    "round": _Evaluation.fn_round,
    "timestamp": _Evaluation.fn_timestamp,
    "label_replace": _Evaluation.fn_label_replace,
    "label_join": _Evaluation.fn_label_join,
    "sort": lambda ev, args: ev.fn_sort(args, descending=False),
    "sort_desc": lambda ev, args: ev.fn_sort(args, descending=True),
    "sort_by_label": lambda ev, args: ev.fn_sort_by_label(args, descending=False),
    "sort_by_label_desc": lambda ev, args: ev.fn_sort_by_label(args, descending=True),
    "abs": _simple(abs),
    "ceil": _simple(lambda v: float(np.ceil(v))),
    "floor": _simple(lambda v: float(np.floor(v))),
    "sqrt": _simple(lambda v: float(np.sqrt(np.float64(v)))),
    "exp": _simple(lambda v: _libm(math.exp, v)),
    "ln": _simple(lambda v: go_math.log(v)),
    "log2": _simple(lambda v: go_math.log2(v)),
    "log10": _simple(lambda v: go_math.log10(v)),
    "sgn": _simple(lambda v: -1.0 if v < 0 else (1.0 if v > 0 else v)),
    "sin": _simple(lambda v: _libm(math.sin, v)),
    "cos": _simple(lambda v: _libm(math.cos, v)),
    "tan": _simple(lambda v: _libm(math.tan, v)),
    "asin": _simple(lambda v: _libm(math.asin, v)),
    "acos": _simple(lambda v: _libm(math.acos, v)),
    "atan": _simple(lambda v: _libm(math.atan, v)),
    "sinh": _simple(lambda v: _libm(math.sinh, v)),
    "cosh": _simple(lambda v: _libm(math.cosh, v)),
    "tanh": _simple(lambda v: _libm(math.tanh, v)),
    "asinh": _simple(lambda v: _libm(math.asinh, v)),
    "acosh": _simple(lambda v: _libm(math.acosh, v)),
    "atanh": _simple(lambda v: _libm(math.atanh, v)),
    "rad": _simple(lambda v: v * math.pi / 180),
    "deg": _simple(lambda v: v * 180 / math.pi),
    "day_of_month": _date(lambda s: float(_civil(s)[2])),
    "day_of_week": _date(lambda s: float((s // 86400 + 4) % 7)),
    "day_of_year": _date(lambda s: float(_day_of_year(s))),
    "days_in_month": _date(lambda s: float(_days_in_month(*_civil(s)[:2]))),
    "hour": _date(lambda s: float(s % 86400 // 3600)),
    "minute": _date(lambda s: float(s % 3600 // 60)),
    "month": _date(lambda s: float(_civil(s)[1])),
    "year": _date(lambda s: float(_civil(s)[0])),
}
SUPPORTED_FUNCTIONS = frozenset(FUNCTIONS)
# Prometheus 2.x's name for double_exponential_smoothing; promql-parser (Prometheus 3's grammar) no longer
# knows it, so parse() renames it before parsing.
RENAMED_FUNCTIONS = {"holt_winters": "double_exponential_smoothing"}


def _libm(fn: Callable[[float], float], v: float) -> float:
    """A math-module function with IEEE results instead of exceptions (Go returns NaN or ±Inf)."""
    try:
        return fn(v)
    except ValueError:
        return math.nan
    except OverflowError:
        return math.inf if fn is not math.sinh or v > 0 else -math.inf


def _libm2(fn: Callable[[float, float], float], x: float, y: float) -> float:
    try:
        return fn(x, y)
    except ValueError:
        return math.nan


def _go_format_f(v: float) -> str:
    """strconv.FormatFloat(v, 'f', -1, 64): shortest digits that read back exactly, never an exponent."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return go_float_fixed(v)


def _civil(seconds: int) -> tuple[int, int, int]:
    """(year, month, day) of a Unix time in UTC, proleptic Gregorian, any int64 (H. Hinnant's algorithm)."""
    z = seconds // 86400 + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if _is_leap(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _day_of_year(seconds: int) -> int:
    year, month, day = _civil(seconds)
    return sum(_days_in_month(year, m) for m in range(1, month)) + day


def _go_max(x: float, y: float) -> float:
    """Go's math.Max: +Inf wins over NaN, NaN over everything else, +0 over -0."""
    if x == math.inf or y == math.inf:
        return math.inf
    if math.isnan(x) or math.isnan(y):
        return math.nan
    if x == 0 and x == y:
        return y if math.copysign(1.0, x) < 0 else x
    return x if x > y else y


def _go_min(x: float, y: float) -> float:
    """Go's math.Min: -Inf wins over NaN, NaN over everything else, -0 over +0."""
    if x == -math.inf or y == -math.inf:
        return -math.inf
    if math.isnan(x) or math.isnan(y):
        return math.nan
    if x == 0 and x == y:
        return x if math.copysign(1.0, x) < 0 else y
    return x if x < y else y


def _string_arg(node: Any) -> str:
    node = _unparen(node)
    if not isinstance(node, pp.StringLiteral):
        raise PromQLError(f"expected a string literal, got {type(node).__name__}")
    return str(node.val)


def _natural_key(text: str) -> list[tuple[int, int, str]]:
    """Natural order (Prometheus' natsort): digit runs compare as numbers."""
    return [(1, int(part), part) if part.isdigit() else (0, 0, part) for part in re.split(r"(\d+)", text) if part]


def match_op_name(op: Any) -> MatchOpName:
    """A promql-parser matcher operator as its PromQL spelling (the anomaly rules' selectors use it too)."""
    # promql-parser's enums are not hashable, hence comparisons rather than a dict.
    if op == pp.MatchOp.Equal:
        return "="
    if op == pp.MatchOp.NotEqual:
        return "!="
    return "=~" if op == pp.MatchOp.Re else "!~"


def _extension(selector: Any) -> extended_ranges.Extension | None:
    """The `anchored`/`smoothed` modifier of a vector selector (see core.promql.extended_ranges)."""
    return extended_ranges.marker(m.name for m in selector.matchers.matchers)


def _unparen(node: Any) -> Any:
    while isinstance(node, pp.ParenExpr):
        node = node.expr
    return node


def _absent_labels(node: Any) -> _Labels:
    """Labels for absent()'s output: the selector's equality matchers, minus names matched twice."""
    if isinstance(node, pp.MatrixSelector):
        node = node.vector_selector
    if not isinstance(node, pp.VectorSelector):
        return {}
    out: _Labels = {}
    removed = []
    for m in node.matchers.matchers:
        if m.name == NAME:
            continue
        if m.op == pp.MatchOp.Equal and m.name not in out:
            if m.value:
                out[m.name] = m.value
        else:
            removed.append(m.name)
    for name in removed:
        out.pop(name, None)
    return out


# ------------------------------------------------------------------------------------- numeric kernels


def _binop_arrays(op: str, lhs: np.ndarray, rhs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Prometheus' vectorElemBinop over arrays: (values, keep). IEEE results: x/0 is ±Inf or NaN."""
    with np.errstate(all="ignore"):
        if op in VALUE_OPERATORS:
            if op == "atan2":
                values = np.array([_libm2(math.atan2, x, y) for x, y in zip(lhs.tolist(), rhs.tolist(), strict=True)])
            elif op == "+":
                values = lhs + rhs
            elif op == "-":
                values = lhs - rhs
            elif op == "*":
                values = lhs * rhs
            elif op == "/":
                values = lhs / rhs
            elif op == "%":
                values = np.fmod(lhs, rhs)
            else:
                values = np.array([_go_pow(x, y) for x, y in zip(lhs.tolist(), rhs.tolist(), strict=True)])
            return values, np.ones(len(values), dtype=bool)
        comparisons = {"==": np.equal, "!=": np.not_equal, ">": np.greater, "<": np.less,
                       ">=": np.greater_equal, "<=": np.less_equal}
        if op not in comparisons:
            raise PromQLError(f"operator {op} is not supported yet")
        return lhs, comparisons[op](lhs, rhs)


def _elem_binop(op: str, lhs: float, rhs: float) -> tuple[float, bool]:
    values, keep = _binop_arrays(op, np.array([lhs]), np.array([rhs]))
    return float(values[0]), bool(keep[0])


def _go_pow(x: float, y: float) -> float:
    """Go's math.Pow (libm's pow rounds differently): exp/log for the fraction, squaring for the integer."""
    if y == 0 or x == 1:
        return 1.0
    if y == 1:
        return x
    if math.isnan(x) or math.isnan(y):
        return math.nan
    if x == 0:
        odd = _is_odd_int(y)
        if y < 0:
            return math.copysign(math.inf, x) if odd else math.inf
        return x if odd else 0.0
    if math.isinf(y):
        if x == -1:
            return 1.0
        return 0.0 if (abs(x) < 1) == (y > 0) else math.inf
    if math.isinf(x):
        if x < 0:
            return _go_pow(1 / x, -y)
        return 0.0 if y < 0 else math.inf
    if y == 0.5:
        return math.sqrt(x)
    if y == -0.5:
        return 1 / math.sqrt(x)
    yf, yi = math.modf(abs(y))
    if yf != 0 and x < 0:
        return math.nan
    if yi >= 2**63:
        if x == -1:
            return 1.0
        return 0.0 if (abs(x) < 1) == (y > 0) else math.inf
    a1, ae = 1.0, 0
    if yf != 0:
        if yf > 0.5:
            yf -= 1
            yi += 1
        a1 = math.exp(yf * math.log(x))
    x1, xe = math.frexp(x)
    i = int(yi)
    while i != 0:
        if xe < -(1 << 12) or xe > (1 << 12):
            ae += xe
            break
        if i & 1 == 1:
            a1 *= x1
            ae += xe
        x1 *= x1
        xe <<= 1
        if x1 < 0.5:
            x1 += x1
            xe -= 1
        i >>= 1
    if y < 0:
        a1 = 1 / a1
        ae = -ae
    try:
        return math.ldexp(a1, ae)
    except OverflowError:
        return math.copysign(math.inf, a1)


def _is_odd_int(y: float) -> bool:
    if abs(y) >= 2**53:
        return False
    yf, yi = math.modf(y)
    return yf == 0 and int(yi) & 1 == 1


def _aggregate_values(op: str, values: list[float], param: float, prometheus3: bool = False) -> float:
    """engine.go aggregation for one group, in input order (the order decides float rounding).

    Prometheus 3 sums with Kahan-Neumaier compensation (sum, avg), and a NaN or Inf first value makes
    stddev/stdvar NaN; Prometheus 2.42 adds plainly."""
    if prometheus3 and op in ("sum", "avg"):
        return _kahan_sum(values) if op == "sum" else _kahan_avg(values)
    if op == "sum":
        total = 0.0
        for x in values:
            total += x
        return total
    if op == "count":
        return float(len(values))
    if op == "avg":
        return _avg(values)
    if op == "min":
        lo = values[0]
        for x in values[1:]:
            if lo > x or math.isnan(lo):
                lo = x
        return lo
    if op == "max":
        hi = values[0]
        for x in values[1:]:
            if hi < x or math.isnan(hi):
                hi = x
        return hi
    if op == "count_values":
        return float(len(values))
    if op == "group":
        return 1.0
    if op in ("stddev", "stdvar"):
        mean, acc, count = values[0], 0.0, 1.0
        if prometheus3 and (math.isnan(mean) or math.isinf(mean)):
            acc = math.nan
        for x in values[1:]:
            count += 1
            delta = x - mean
            mean += delta / count
            acc += delta * (x - mean)
        return math.sqrt(acc / count) if op == "stddev" else acc / count
    if op == "quantile":
        return kernels.quantile(param, values)
    raise PromQLError(f"aggregation {op} is not supported yet")


def _kahan_inc(inc: float, total: float, c: float) -> tuple[float, float]:
    """util/kahansum.Inc (Neumaier's variant); an infinite sum drops the compensation."""
    t = total + inc
    if math.isinf(t):
        c = 0.0
    elif abs(total) >= abs(inc):
        c += (total - t) + inc
    else:
        c += (inc - t) + total
    return t, c


def _kahan_sum(values: list[float]) -> float:
    total, c = 0.0, 0.0
    for x in values:
        total, c = _kahan_inc(x, total, c)
    return total + c


def _kahan_avg(values: list[float]) -> float:
    """Prometheus 3's avg: the Kahan sum divided by the count, switching to a Kahan-compensated
    incremental mean once the running sum would overflow (engine.go, parser.AVG)."""
    total, c, count = values[0], 0.0, 1.0
    incremental, mean = False, values[0]
    with np.errstate(all="ignore"):
        for x in values[1:]:
            count += 1
            if not incremental:
                new_total, new_c = _kahan_inc(x, total, c)
                if not math.isinf(new_total):
                    total, c = new_total, new_c
                    continue
                incremental = True
                mean = total / (count - 1)
                c /= count - 1
            q = (count - 1) / count
            mean, c = _kahan_inc(x / count, q * mean, q * c)
    return mean + c if incremental else total / count + c / count


def _avg_over_time_3(p: kernels.Packed) -> np.ndarray:
    """Prometheus 3's avg_over_time: the same direct-then-incremental Kahan mean as its avg."""
    return np.array([_kahan_avg(p.values[i, :n].tolist()) if n else math.nan for i, n in enumerate(p.lens.tolist())])


def _avg(values: list[float]) -> float:
    mean, count = values[0], 1.0
    for x in values[1:]:
        count += 1
        if math.isinf(mean):
            if math.isinf(x) and (mean > 0) == (x > 0):
                continue
            if not math.isinf(x) and not math.isnan(x):
                continue
        with np.errstate(all="ignore"):
            mean += float(np.float64(x) / count - np.float64(mean) / count)
    return mean


def _top_k(members: list[VectorSample], k: int, reverse: bool) -> list[VectorSample]:
    """topk/bottomk exactly as engine.go (2.42) with Go's container/heap, so ties pick the same series."""
    heap: list[VectorSample] = []

    def less(i: int, j: int) -> bool:
        a, b = heap[i].value, heap[j].value
        if math.isnan(a):
            return True
        return a > b if reverse else a < b

    def swap(i: int, j: int) -> None:
        heap[i], heap[j] = heap[j], heap[i]

    def up(j: int) -> None:
        while j > 0:
            i = (j - 1) // 2
            if not less(j, i):
                break
            swap(i, j)
            j = i

    def down(i: int, n: int) -> None:
        while True:
            j = 2 * i + 1
            if j >= n:
                break
            if j + 1 < n and less(j + 1, j):
                j += 1
            if not less(j, i):
                break
            swap(i, j)
            i = j

    for s in members:
        if not heap:
            heap.append(s)
            continue
        top = heap[0].value
        displaces = s.value > top if not reverse else s.value < top
        if len(heap) < k or displaces or math.isnan(top):
            if len(heap) == k:
                if k == 1:
                    heap[0] = s
                    continue
                swap(0, len(heap) - 1)
                down(0, len(heap) - 1)
                heap.pop()
            heap.append(s)
            up(len(heap) - 1)
    return heap


def _histogram_quantile(q: float, vec: list[VectorSample]) -> list[VectorSample]:
    """promql/functions.go funcHistogramQuantile over classic ``le`` buckets (quantile.go bucketQuantile)."""
    groups: dict[tuple[tuple[str, str], ...], tuple[_Labels, list[tuple[float, float]]]] = {}
    for s in vec:
        le = s.labels.get("le")
        if le is None:
            continue
        try:
            upper = float(le)
        except ValueError:
            continue
        gl = {k: v for k, v in s.labels.items() if k not in ("le", NAME)}
        # The metric name is part of the group (prometheus#9910) though not of the output labels.
        key = (*labels_key(gl), (NAME, s.labels.get(NAME, "")))
        groups.setdefault(key, (gl, []))[1].append((upper, s.value))
    return [VectorSample(gl, _bucket_quantile(q, buckets)) for gl, buckets in groups.values()]


def _bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    buckets = sorted(buckets, key=lambda b: b[0])
    if buckets[-1][0] != math.inf:
        return math.nan
    coalesced: list[list[float]] = []
    for upper, count in buckets:
        if coalesced and coalesced[-1][0] == upper:
            coalesced[-1][1] += count
        else:
            coalesced.append([upper, count])
    highest = -math.inf
    for b in coalesced:
        if b[1] > highest:
            highest = b[1]
        elif b[1] < highest:
            b[1] = highest
    if len(coalesced) < 2:
        return math.nan
    observations = coalesced[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    idx = next((i for i in range(len(coalesced) - 1) if coalesced[i][1] >= rank), len(coalesced) - 1)
    if idx == len(coalesced) - 1:
        return coalesced[-2][0]
    if idx == 0 and coalesced[0][0] <= 0:
        return coalesced[0][0]
    bucket_start = 0.0
    bucket_end, count = coalesced[idx]
    if idx > 0:
        bucket_start = coalesced[idx - 1][0]
        count -= coalesced[idx - 1][1]
        rank -= coalesced[idx - 1][1]
    return bucket_start + (bucket_end - bucket_start) * (rank / count)


@dataclass(frozen=True)
class _Matching:
    """Vector matching of a binary operator: cardinality, on/ignoring labels and group_x extra labels."""

    card: str
    on: bool
    labels: tuple[str, ...]
    include: tuple[str, ...]

    @cached_property
    def ignored(self) -> frozenset[str]:
        return frozenset((*self.labels, NAME))

    def group_labels(self, labels: _Labels) -> _Labels:
        if self.on:
            return {k: labels[k] for k in self.labels if k in labels}
        return {k: v for k, v in labels.items() if k not in self.ignored}

    @classmethod
    def of(cls, modifier: Any, op: str) -> _Matching:
        default = "many-to-many" if op in SET_OPERATORS else "one-to-one"
        if modifier is None:
            return cls(default, False, (), ())
        cards = [
            (pp.VectorMatchCardinality.OneToOne, "one-to-one"),
            (pp.VectorMatchCardinality.ManyToOne, "many-to-one"),
            (pp.VectorMatchCardinality.OneToMany, "one-to-many"),
            (pp.VectorMatchCardinality.ManyToMany, "many-to-many"),
        ]
        card = next((name for value, name in cards if modifier.card == value), default)
        on, labels = False, ()
        if modifier.matching is not None:
            on = modifier.matching.type == pp.LabelModifierType.Include
            labels = tuple(modifier.matching.labels)
        include = tuple(modifier.group_labels or ()) if card in ("many-to-one", "one-to-many") else ()
        return cls(card, on, labels, include)

    def signature(self, labels: _Labels) -> Hashable:
        """The match group: values of the on() labels, or every label but the ignoring() ones and the name."""
        if self.on:
            return tuple(labels.get(k, "") for k in self.labels)
        return frozenset((k, v) for k, v in labels.items() if k not in self.ignored)

    def result_labels(self, lhs: _Labels, rhs: _Labels, drop_name: bool, metadata: bool = False) -> _Labels:
        out = _drop_name(lhs, metadata) if drop_name else dict(lhs)
        if self.card == "one-to-one":
            if self.on:
                out = {k: v for k, v in out.items() if k in self.labels}
            else:
                out = {k: v for k, v in out.items() if k not in self.labels}
        for name in self.include:
            value = rhs.get(name, "")
            if value:
                out[name] = value
            else:
                out.pop(name, None)
        return out


def _set_operation(
    op: str, lhs: list[VectorSample], rhs: list[VectorSample], matching: _Matching
) -> list[VectorSample]:
    """and / or / unless: many-to-many by signature; names are kept."""
    if op == "and":
        if not lhs or not rhs:
            return []
        right = {matching.signature(s.labels) for s in rhs}
        return [s for s in lhs if matching.signature(s.labels) in right]
    if op == "or":
        if not lhs:
            return list(rhs)
        if not rhs:
            return list(lhs)
        left = {matching.signature(s.labels) for s in lhs}
        return [*lhs, *(s for s in rhs if matching.signature(s.labels) not in left)]
    if not lhs or not rhs:
        return list(lhs)
    right = {matching.signature(s.labels) for s in rhs}
    return [s for s in lhs if matching.signature(s.labels) not in right]
