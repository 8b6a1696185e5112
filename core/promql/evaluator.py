"""A PromQL evaluator over a SeriesStore, matching Prometheus 2.42 (the reference promtool) exactly.

Expressions are parsed by the ``promql-parser`` package; this module checks the supported subset at
parse time (so a rule file fails when loaded, not when first evaluated) and evaluates instant queries
at a given event time. The numeric code follows promql/engine.go, functions.go and quantile.go
line by line where float rounding could differ: results must equal promtool's bit for bit where
practical.

Prometheus 2.42 semantics worth knowing: instant selectors look back 5 minutes *inclusive*
(``[t-5m, t]``), range selectors are closed at both ends (``[t-range, t]``), staleness markers end a
series for instant selectors and are skipped inside ranges.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import promql_parser as pp

from core.errors import CoreError
from core.promql import range_kernels as kernels
from core.promql.series_store import SeriesStore
from core.promql.values import (
    Matcher,
    MatchOpName,
    Scalar,
    SeriesData,
    VectorSample,
    is_stale,
    labels_key,
    stale_mask,
)

NAME = "__name__"
# Prometheus stores milliseconds; half a millisecond widens a float-seconds window to include its
# closed left end without reaching the previous millisecond.
_HALF_MS = 0.0005


class PromQLError(CoreError):
    """A PromQL expression that does not parse, uses an unsupported construct, or fails to evaluate."""


RANGE_FUNCTIONS = {
    "rate", "irate", "increase", "delta", "deriv", "predict_linear",
    "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
    "last_over_time", "quantile_over_time", "absent_over_time", "changes", "resets",
}  # fmt: skip
INSTANT_FUNCTIONS = {
    "absent", "abs", "clamp_min", "clamp_max", "round", "time", "vector", "scalar", "histogram_quantile",
}  # fmt: skip
SUPPORTED_FUNCTIONS = RANGE_FUNCTIONS | INSTANT_FUNCTIONS
SUPPORTED_AGGREGATIONS = {"sum", "avg", "min", "max", "count", "quantile", "topk", "bottomk", "stddev"}
ARITHMETIC = {"+", "-", "*", "/", "%", "^"}
COMPARISON = {"==", "!=", ">", "<", ">=", "<="}
SET_OPERATORS = {"and", "or", "unless"}

Value = Scalar | list[VectorSample] | list[SeriesData]
_Labels = dict[str, str]


@dataclass(frozen=True)
class ParsedExpr:
    """A parsed expression known to use only the supported subset.

    ``max_lookback`` is how far back (seconds) from the evaluation time the expression reads, given a
    5-minute lookback: what a SeriesStore must retain for it.
    """

    text: str
    node: Any
    max_lookback: float


# ---------------------------------------------------------------------------------------------- parsing


def parse(expr: str) -> ParsedExpr:
    """Parse with promql-parser, then reject what this evaluator does not support, naming it."""
    try:
        node = pp.parse(expr)
    except ValueError as exc:
        raise PromQLError(f"cannot parse PromQL {expr!r}: {exc}") from exc
    reach = _check(node, expr)
    return ParsedExpr(text=expr, node=node, max_lookback=reach + 300.0)


def _unsupported(what: str, expr: str) -> PromQLError:
    return PromQLError(f"{what} is not supported yet (in {expr!r})")


def _check(node: Any, expr: str) -> float:
    """Validate the subset; return the longest range + offset the expression reads (seconds)."""
    if isinstance(node, pp.NumberLiteral):
        return 0.0
    if isinstance(node, pp.StringLiteral):
        raise _unsupported("a string literal", expr)
    if isinstance(node, pp.ParenExpr | pp.UnaryExpr):
        return _check(node.expr, expr)
    if isinstance(node, pp.SubqueryExpr):
        raise _unsupported("a subquery", expr)
    if isinstance(node, pp.VectorSelector):
        if node.at is not None:
            raise _unsupported("the @ modifier", expr)
        if node.matchers.or_matchers:
            raise _unsupported("'or' inside label matchers", expr)
        return max(0.0, _seconds(node.offset))
    if isinstance(node, pp.MatrixSelector):
        return _seconds(node.range) + _check(node.vector_selector, expr)
    if isinstance(node, pp.Call):
        name = node.func.name
        if name not in SUPPORTED_FUNCTIONS:
            raise _unsupported(f"function {name}()", expr)
        return max([_check(a, expr) for a in node.args], default=0.0)
    if isinstance(node, pp.AggregateExpr):
        op = str(node.op)
        if op not in SUPPORTED_AGGREGATIONS:
            raise _unsupported(f"aggregation {op}", expr)
        reach = _check(node.expr, expr)
        if node.param is not None:
            reach = max(reach, _check(node.param, expr))
        return reach
    if isinstance(node, pp.BinaryExpr):
        op = str(node.op)
        if op not in ARITHMETIC | COMPARISON | SET_OPERATORS:
            raise _unsupported(f"operator {op}", expr)
        return max(_check(node.lhs, expr), _check(node.rhs, expr))
    raise _unsupported(f"expression {type(node).__name__}", expr)


def _seconds(delta: Any) -> float:
    return 0.0 if delta is None else float(delta.total_seconds())


# ------------------------------------------------------------------------------------------- evaluation


def evaluate(expr: ParsedExpr | str, at: float, store: SeriesStore, lookback: float = 300.0) -> Value:
    """Evaluate an instant query at event time ``at`` (epoch seconds), as Prometheus' engine would."""
    parsed = parse(expr) if isinstance(expr, str) else expr
    return _Evaluation(at, store, lookback, parsed.text).eval(parsed.node)


def evaluate_range(
    expr: ParsedExpr | str, start: float, end: float, step: float, store: SeriesStore
) -> list[SeriesData]:
    """Evaluate at start, start+step, ... end; one SeriesData per output label set (scalars unlabelled)."""
    parsed = parse(expr) if isinstance(expr, str) else expr
    if step <= 0:
        raise PromQLError(f"step must be positive, got {step}")
    points: dict[tuple[tuple[str, str], ...], tuple[_Labels, list[float], list[float]]] = {}
    n = math.floor((end - start) / step + 1e-9) + 1
    for i in range(n):
        t = start + i * step
        result = evaluate(parsed, t, store)
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


def _drop_name(labels: Mapping[str, str]) -> _Labels:
    return {k: v for k, v in labels.items() if k != NAME}


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
    """One instant evaluation: the time, store and lookback shared by every node."""

    def __init__(self, at: float, store: SeriesStore, lookback: float, text: str) -> None:
        self.at, self.store, self.lookback, self.text = at, store, lookback, text

    def error(self, message: str) -> PromQLError:
        return PromQLError(f"{message} (in {self.text!r})")

    def eval(self, node: Any) -> Value:
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
        return [VectorSample(_drop_name(s.labels), -s.value) for s in value]  # type: ignore[union-attr]

    # -- selectors

    @staticmethod
    def matchers(node: Any) -> list[Matcher]:
        out = [Matcher(m.name, _match_op(m.op), m.value) for m in node.matchers.matchers]
        if node.name:
            out.append(Matcher(NAME, "=", node.name))
        return out

    def instant_selector(self, node: Any) -> list[VectorSample]:
        ref = self.at - _seconds(node.offset)
        latest = self.store.latest(self.matchers(node), ref - self.lookback - _HALF_MS, ref)
        return [VectorSample(labels, value) for labels, value in latest if value == value or not is_stale(value)]

    def range_selector(self, node: Any) -> list[SeriesData]:
        vs = node.vector_selector
        end = self.at - _seconds(vs.offset)
        start = end - _seconds(node.range)
        out = []
        for series in self.store.select(self.matchers(vs), start - _HALF_MS, end):
            fresh = ~stale_mask(series.values)
            if fresh.any():
                out.append(SeriesData(series.labels, series.ts[fresh], series.values[fresh]))
        return out

    # -- functions

    def call(self, node: Any) -> Value:
        name = node.func.name
        args = node.args
        if name == "time":
            return Scalar(self.at)
        if name == "vector":
            return [VectorSample({}, self.scalar(args[0]))]
        if name == "scalar":
            vec = self.vector(args[0])
            return Scalar(vec[0].value if len(vec) == 1 else math.nan)
        if name == "absent":
            return [] if self.vector(args[0]) else [VectorSample(_absent_labels(args[0]), 1.0)]
        if name == "absent_over_time":
            present = self.range_selector(_unparen(args[0]))
            return [] if present else [VectorSample(_absent_labels(_unparen(args[0])), 1.0)]
        if name == "histogram_quantile":
            return _check_unique(_histogram_quantile(self.scalar(args[0]), self.vector(args[1])), self.text)
        if name in RANGE_FUNCTIONS:
            return _check_unique(self.range_function(name, args), self.text)
        vec = self.vector(args[0])
        fn = self.instant_function(name, args)
        values = fn(np.array([s.value for s in vec], dtype=np.float64))
        return _check_unique([VectorSample(_drop_name(s.labels), float(v)) for s, v in zip(vec, values, strict=True)],
                             self.text)

    def instant_function(self, name: str, args: list[Any]) -> Callable[[np.ndarray], np.ndarray]:
        if name == "abs":
            return np.abs
        if name == "clamp_min":
            lo = self.scalar(args[1])
            return lambda v: np.maximum(v, lo)
        if name == "clamp_max":
            hi = self.scalar(args[1])
            return lambda v: np.minimum(v, hi)
        if name == "round":
            inverse = 1.0 / (self.scalar(args[1]) if len(args) > 1 else 1.0)
            return lambda v: np.floor(v * inverse + 0.5) / inverse
        raise self.error(f"function {name}() is not supported yet")

    def range_function(self, name: str, args: list[Any]) -> list[VectorSample]:
        """Range-vector functions, computed for all selected series at once (see range_kernels)."""
        matrix_arg = _unparen(args[1] if name == "quantile_over_time" else args[0])
        vs = matrix_arg.vector_selector
        range_s = _seconds(matrix_arg.range)
        at_ms = _to_ms(self.at)
        range_end = at_ms - _to_ms(_seconds(vs.offset))
        range_start = range_end - _to_ms(range_s)
        windows = self.store.windows(self.matchers(vs), range_end / 1000 - range_s - _HALF_MS, range_end / 1000)
        if not windows:
            return []
        packed = kernels.Packed.of([w[1] for w in windows], [w[2] for w in windows])
        defined = packed.nonempty()
        if name in ("rate", "increase", "delta"):
            values, defined = kernels.extrapolated_rate(
                packed, range_start, range_end, range_s, is_counter=name != "delta", is_rate=name == "rate"
            )
        elif name == "irate":
            values, defined = kernels.instant_rate(packed)
        elif name == "deriv":
            values = kernels.linear_regression(packed, packed.ts[:, 0])[0]
            defined = packed.lens >= 2
        elif name == "predict_linear":
            horizon = self.scalar(args[1])
            slope, intercept = kernels.linear_regression(packed, np.full(len(windows), at_ms, dtype=np.int64))
            values = slope * horizon + intercept
            defined = packed.lens >= 2
        elif name == "sum_over_time":
            values = kernels.sum_over_time(packed)
        elif name == "avg_over_time":
            values = kernels.avg_over_time(packed)
        elif name in ("max_over_time", "min_over_time"):
            values = kernels.extreme_over_time(packed, largest=name == "max_over_time")
        elif name == "count_over_time":
            values = packed.lens.astype(np.float64)
        elif name == "last_over_time":
            values = packed.last()[1]
        elif name in ("changes", "resets"):
            values = kernels.value_changes(packed, resets=name == "resets")
        elif name == "quantile_over_time":
            q = self.scalar(args[0])
            values = np.array([kernels.quantile(q, packed.values[i, : packed.lens[i]].tolist())
                               for i in range(len(windows))])
        else:
            raise self.error(f"function {name}() is not supported yet")
        keep_name = name == "last_over_time"
        return [
            VectorSample(dict(labels) if keep_name else _drop_name(labels), value)
            for (labels, _, _), value, ok in zip(windows, values.tolist(), (defined & packed.nonempty()).tolist(),
                                                 strict=True)
            if ok
        ]

    # -- aggregations

    def aggregate(self, node: Any) -> list[VectorSample]:
        op = str(node.op)
        param = self.scalar(node.param) if node.param is not None else 0.0
        vec = self.vector(node.expr)
        modifier = node.modifier
        without = modifier is not None and modifier.type == pp.AggModifierType.Without
        grouping = list(modifier.labels) if modifier is not None else []

        drop = {*grouping, NAME}
        # Group keys that need no sorting: label values in grouping order for `by`, a frozenset for `without`.
        groups: dict[Hashable, tuple[_Labels, list[VectorSample]]] = {}
        for s in vec:
            key: Hashable
            if without:
                key = frozenset((k, v) for k, v in s.labels.items() if k not in drop)
            else:
                key = tuple(s.labels.get(k, "") for k in grouping)
            group = groups.get(key)
            if group is None:
                if without:
                    gl = {k: v for k, v in s.labels.items() if k not in drop}
                else:
                    gl = {k: s.labels[k] for k in grouping if k in s.labels}
                group = groups[key] = (gl, [])
            group[1].append(s)

        out: list[VectorSample] = []
        if op in ("topk", "bottomk"):
            k = min(int(param), len(vec)) if not math.isnan(param) else 0
            if k < 1:
                return []
            for _, members in groups.values():
                out.extend(_top_k(members, k, reverse=op == "bottomk"))
            return out
        for gl, members in groups.values():
            values = [s.value for s in members]
            out.append(VectorSample(gl, _aggregate_values(op, values, param)))
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
            return _check_unique(self.vector_scalar(op, lhs, rhs, return_bool), self.text)
        lvec, rvec = lhs, rhs
        matching = _Matching.of(modifier, op)
        if op in SET_OPERATORS:
            return _set_operation(op, lvec, rvec, matching)  # type: ignore[arg-type]
        return _check_unique(self.vector_vector(op, lvec, rvec, matching, return_bool), self.text)  # type: ignore[arg-type]

    @staticmethod
    def vector_scalar(op: str, lhs: Value, rhs: Value, return_bool: bool) -> list[VectorSample]:
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
        drop = op in ARITHMETIC or return_bool
        return [
            VectorSample(_drop_name(s.labels) if drop else s.labels, value)
            for s, value, kept in zip(vec, values.tolist(), keep.tolist(), strict=True)
            if kept
        ]

    def vector_vector(self, op: str, lhs: list[VectorSample], rhs: list[VectorSample], matching: _Matching,
                      return_bool: bool) -> list[VectorSample]:
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
        for ls in lhs:
            sig = matching.signature(ls.labels)
            found = right.get(sig)
            if found is not None:
                pairs.append((sig, ls, found))
        # Undo the swap for one-to-many so the operator sees the original left and right values.
        left_values = np.array([(rs.value if one_to_many else ls.value) for _, ls, rs in pairs], dtype=np.float64)
        right_values = np.array([(ls.value if one_to_many else rs.value) for _, ls, rs in pairs], dtype=np.float64)
        values, keep = _binop_arrays(op, left_values, right_values)
        matched: dict[Hashable, set[frozenset[tuple[str, str]]]] = {}
        out = []
        for (sig, ls, found), value, kept in zip(pairs, values.tolist(), keep.tolist(), strict=True):
            if return_bool:
                value = 1.0 if kept else 0.0
            elif not kept:
                continue
            metric = matching.result_labels(ls.labels, found.labels, op)
            if return_bool:
                metric = _drop_name(metric)
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


def _match_op(op: Any) -> MatchOpName:
    # promql-parser's enums are not hashable, hence comparisons rather than a dict.
    if op == pp.MatchOp.Equal:
        return "="
    if op == pp.MatchOp.NotEqual:
        return "!="
    return "=~" if op == pp.MatchOp.Re else "!~"


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
        if op in ARITHMETIC:
            if op == "+":
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


def _aggregate_values(op: str, values: list[float], param: float) -> float:
    """engine.go aggregation for one group, in input order (the order decides float rounding)."""
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
    if op == "stddev":
        mean, acc, count = values[0], 0.0, 1.0
        for x in values[1:]:
            count += 1
            delta = x - mean
            mean += delta / count
            acc += delta * (x - mean)
        return math.sqrt(acc / count)
    if op == "quantile":
        return kernels.quantile(param, values)
    raise PromQLError(f"aggregation {op} is not supported yet")


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

    def result_labels(self, lhs: _Labels, rhs: _Labels, op: str) -> _Labels:
        out = _drop_name(lhs) if op in ARITHMETIC else dict(lhs)
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
