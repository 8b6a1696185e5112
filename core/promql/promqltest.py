"""Prometheus' PromQL test scripts (the promqltest DSL of promql/promqltest/testdata/*.test), run natively.

The language, as promql/promqltest/test.go reads it: ``load <interval>`` followed by series lines in
expanding notation (``1+1x10``, ``_``, ``stale``); ``clear``; ``eval instant at <time> <expr>`` and
``eval range from <t> to <t> step <d> <expr>``, each followed by its expected series (or one scalar);
the ``eval_fail``/``eval_ordered``/``eval_warn``/``eval_info`` variants and the newer ``expect fail``,
``expect ordered``, ``expect warn``... lines. Values are compared as promqltest does (1e-6 relative).

What this runner does not do, and says so: native histograms (a case whose storage holds one, or whose
result is one, is skipped and counted), annotation texts (``eval_warn``/``eval_info`` run as plain evals)
and error texts (an ``eval_fail`` passes on any error), and promqltest's extra re-runs of each instant
case with ``@`` fixed and as a range query. Pure: the caller reads the file and prints the report.
"""

from __future__ import annotations

import math
import re
import sys
import zlib
from dataclasses import dataclass, field

import orjson

from watchkeeper.core.errors import CoreError
from watchkeeper.core.promql import sharding
from watchkeeper.core.promql.evaluator import NAME, ParsedExpr, Semantics, Value, evaluate, evaluate_range, parse
from watchkeeper.core.promql.series_notation import STALE, Stale, expand_series, parse_duration, parse_metric
from watchkeeper.core.promql.series_store import SeriesStore
from watchkeeper.core.promql.values import Scalar, SeriesData, labels_key

_LOAD = re.compile(r"^load(?:_(with_nhcb))?\s+(\S+)$")
_EVAL_INSTANT = re.compile(r"^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(\S+?))?\s+(.+)$")
_EVAL_RANGE = re.compile(r"^eval(?:_(fail|warn|info))?\s+range\s+from\s+(\S+)\s+to\s+(\S+)\s+step\s+(\S+?)\s+(.+)$")
_EXPECT = re.compile(r"^expect\s+(ordered|fail|warn|no_warn|info|no_info)(?:\s+(regex|msg):(.+))?$")
_EXPECT_RANGE = re.compile(r"^expect range vector\s+from\s+(\S+)\s+to\s+(\S+)\s+step\s+(\S+)$")
# Functions whose only inputs are native histograms: on float series they return nothing, so a case
# using one tests histograms this runner does not load.
_NATIVE_FUNCTIONS = re.compile(r"\bhistogram_(count|sum|avg|fraction|stddev|stdvar)\s*\(")
EPSILON = 1e-6  # promqltest's defaultEpsilon


class PromQLTestError(CoreError):
    """A test script that does not follow the promqltest language, naming the line."""


@dataclass
class Load:
    interval: float
    series: list[tuple[dict[str, str], list[float | Stale | None]]]
    histograms: bool  # native histogram values or load_with_nhcb: not loaded here


@dataclass
class Clear:
    pass


@dataclass
class Expected:
    labels: dict[str, str]  # with __name__; {} for a scalar
    values: list[float | Stale | None]
    position: int  # 1-based, for ordered results


@dataclass
class Eval:
    line: int
    expr: str
    start: float
    end: float
    step: float  # 0 for an instant query
    fail: bool = False
    ordered: bool = False
    scalar: bool = False
    expected: list[Expected] = field(default_factory=list)
    range_result: tuple[float, float, float] | None = None  # `expect range vector from a to b step s`
    skip: str = ""  # why this runner cannot check it (native histograms, string results)

    @property
    def is_range(self) -> bool:
        return self.step > 0


Command = Load | Clear | Eval


def parse_time(text: str, lineno: int) -> float:
    """A test time: a duration since the epoch (``1m``, ``0``), possibly negative."""
    try:
        return -parse_duration(text[1:]) if text.startswith("-") else parse_duration(text)
    except CoreError as exc:
        raise PromQLTestError(f"line {lineno}: {exc}") from None


def parse_number(text: str) -> float | None:
    """strconv.ParseInt(s, 0, 64) then ParseFloat, as promqltest reads a scalar result line."""
    s = text.strip()
    try:
        return float(int(s, 0))
    except ValueError:
        pass
    try:
        return float(s.replace("Inf", "inf").replace("NaN", "nan")) if re.fullmatch(
            r"[+-]?(?:[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?|[0-9]+\.|Inf|inf|NaN)", s) else None
    except ValueError:
        return None


def split_series(line: str) -> tuple[str, str]:
    """`name{a="b c"} 0+1x10` to (selector, values): the first blank outside braces and quotes."""
    depth, quoted = 0, False
    for i, ch in enumerate(line):
        if ch == '"' and (i == 0 or line[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch == "{":
            depth += 1
        elif not quoted and ch == "}":
            depth -= 1
        elif not quoted and depth == 0 and ch in " \t":
            return line[:i], line[i:].strip()
    return line, ""


def _series(line: str, lineno: int) -> tuple[dict[str, str], list[float | Stale | None], bool]:
    """A series line: (labels with __name__, values, whether it holds native histograms)."""
    selector, values = split_series(line)
    if "{{" in values:
        return {}, [], True
    try:
        labels = parse_metric(selector) if selector.strip() != "{}" else {}
        return labels, expand_series(values), False
    except CoreError as exc:
        raise PromQLTestError(f"line {lineno}: {exc}") from None


def parse_script(text: str) -> list[Command]:
    """The commands of a test script, in order; PromQLTestError names the first malformed line."""
    lines = ["" if ln.strip().startswith("#") else ln.strip() for ln in text.split("\n")]
    out: list[Command] = []
    i = 0
    while i < len(lines):
        line, lineno = lines[i], i + 1
        i += 1
        if not line:
            continue
        word = line.split(None, 1)[0].lower()
        if word == "clear":
            out.append(Clear())
            continue
        body: list[tuple[int, str]] = []  # a load's or eval's lines: up to the next blank line
        while i < len(lines) and lines[i]:
            body.append((i + 1, lines[i]))
            i += 1
        if word.startswith("load"):
            out.append(_parse_load(line, lineno, body))
        elif word.startswith("eval"):
            out.append(_parse_eval(line, lineno, body))
        else:
            raise PromQLTestError(f"line {lineno}: invalid command {line!r}: expected load, clear or eval")
    return out


def _parse_load(line: str, lineno: int, body: list[tuple[int, str]]) -> Load:
    m = _LOAD.match(line)
    if m is None:
        raise PromQLTestError(f"line {lineno}: invalid load command {line!r}: expected load <interval>")
    load = Load(parse_time(m[2], lineno), [], histograms=bool(m[1]))
    for n, text in body:
        selector = text.split(None, 1)[0]
        if selector.endswith("@st"):  # start timestamps (Prometheus 3.x): not used by this evaluator
            continue
        labels, values, hist = _series(text, n)
        if hist:
            load.histograms = True
            continue
        load.series.append((labels, values))
    # a series defined twice in one load keeps its last definition (test.go's loadCmd.set, a map by hash)
    last = {labels_key(labels): (labels, values) for labels, values in load.series}
    load.series = list(last.values())
    return load


def _parse_eval(line: str, lineno: int, body: list[tuple[int, str]]) -> Eval:
    if m := _EVAL_INSTANT.match(line):
        t = parse_time(m[2] or "0", lineno)
        ev = Eval(lineno, m[3], t, t, 0.0, fail=m[1] == "fail", ordered=m[1] == "ordered")
    elif m := _EVAL_RANGE.match(line):
        ev = Eval(lineno, m[5], parse_time(m[2], lineno), parse_time(m[3], lineno), parse_time(m[4], lineno),
                  fail=m[1] == "fail")
        if ev.step <= 0 or ev.end < ev.start:
            raise PromQLTestError(f"line {lineno}: invalid range: from {m[2]} to {m[3]} step {m[4]}")
    else:
        raise PromQLTestError(f"line {lineno}: invalid eval command {line!r}: expected "
                              "eval[_fail|_warn|_info|_ordered] instant at <time> <expr> or "
                              "eval[_fail|_warn|_info] range from <t> to <t> step <d> <expr>")
    if _NATIVE_FUNCTIONS.search(ev.expr):
        ev.skip = "native histograms"
    for n, text in body:
        if ev.fail and text.startswith(("expected_fail_message", "expected_fail_regexp")):
            break  # the error text is not compared (see the module docstring)
        if r := _EXPECT_RANGE.match(text):
            ev.range_result = (parse_time(r[1], n), parse_time(r[2], n), parse_time(r[3], n))
            continue
        if text.startswith("expect string"):
            ev.skip = ev.skip or "string result"
            continue
        if text.split(" ")[0] == "expect":
            x = _EXPECT.match(text)
            if x is None:
                raise PromQLTestError(f"line {n}: invalid expect line {text!r}: expected "
                                      "expect ordered|fail|warn|no_warn|info|no_info [msg:|regex: ...]")
            ev.fail = ev.fail or x[1] == "fail"
            ev.ordered = ev.ordered or x[1] == "ordered"
            continue
        number = parse_number(text)
        if number is not None:
            ev.scalar = True
            ev.expected = [Expected({}, [number], 0)]
            break
        labels, values, hist = _series(text, n)
        if hist:
            ev.skip = "native histograms"
            continue
        if len(values) > 1 and not ev.is_range and ev.range_result is None:
            raise PromQLTestError(f"line {n}: several values in an instant evaluation: use a range eval or "
                                  "'expect range vector'")
        ev.expected.append(Expected(labels, values, len(ev.expected) + 1))
    return ev


# ------------------------------------------------------------------------------------------------ running


@dataclass
class CaseResult:
    line: int
    expr: str
    outcome: str  # "passed" | "failed" | "skipped"
    detail: str = ""


@dataclass
class ScriptResult:
    cases: list[CaseResult] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for c in self.cases if c.outcome == outcome)

    @property
    def ok(self) -> bool:
        return self.count("failed") == 0


def almost_equal(a: float, b: float, epsilon: float = EPSILON) -> bool:
    """util/almost.Equal: equal, both NaN, or within epsilon relative (absolute near zero)."""
    if a == b or (math.isnan(a) and math.isnan(b)):
        return True
    if math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b):
        return False
    diff, total = abs(a - b), abs(a) + abs(b)
    if a == 0 or b == 0 or total < sys.float_info.min:
        return diff < epsilon * sys.float_info.min
    return diff / min(total, sys.float_info.max) < epsilon


def run_script(text: str, semantics: Semantics = "prometheus3", partitions: int = 0) -> ScriptResult:
    """Run every command of a script against a fresh store; each eval becomes one CaseResult.

    ``partitions`` > 0: each instant query goes through the partitioned path instead (core.promql.sharding:
    the loaded series split over that many stores by a hash of their labels, plan, partial per store,
    merge, evaluate from the merged leaves), which must give the single store's results."""
    result = ScriptResult()
    store = SeriesStore(retention=math.inf)
    parts = [SeriesStore(retention=math.inf) for _ in range(partitions)]
    histograms = False  # the storage holds native histograms this runner left out
    for cmd in parse_script(text):
        if isinstance(cmd, Clear):
            store, histograms = SeriesStore(retention=math.inf), False
            parts = [SeriesStore(retention=math.inf) for _ in range(partitions)]
        elif isinstance(cmd, Load):
            histograms = histograms or cmd.histograms
            _load(store, cmd, parts)
        else:
            if cmd.skip:
                result.cases.append(CaseResult(cmd.line, cmd.expr, "skipped", cmd.skip))
                continue
            detail = run_eval(cmd, store, semantics, parts)
            if detail and histograms:
                # the storage held native histograms this runner left out: the case cannot be judged
                result.cases.append(CaseResult(cmd.line, cmd.expr, "skipped", f"native histograms ({detail})"))
                continue
            result.cases.append(CaseResult(cmd.line, cmd.expr, "failed" if detail else "passed", detail or ""))
    return result


def partition_of(labels: dict[str, str], partitions: int) -> int:
    """The partition a series goes to in the partitioned mode: a stable hash of its labels."""
    return zlib.crc32(repr(labels_key(labels)).encode()) % partitions


def _load(store: SeriesStore, cmd: Load, parts: list[SeriesStore] | None = None) -> None:
    for labels, values in cmd.series:
        name = labels.get(NAME, "")
        rest = {k: v for k, v in labels.items() if k != NAME}
        targets = [store] if not parts else [store, parts[partition_of(labels, len(parts))]]
        for k, value in enumerate(values):
            t = round(k * cmd.interval * 1000.0) / 1000.0
            for target in targets:
                if value is STALE:
                    target.mark_stale(name, rest, t)
                elif value is not None:
                    target.append_one(name, rest, t, float(value))


def evaluate_partitioned(parsed: ParsedExpr, t: float, parts: list[SeriesStore],
                         subquery_step: float = 60.0) -> Value:
    """An instant query through the partitioned path: plan, one partial per store, merge (with the
    partials through JSON, as on the wire), then the merge stage's evaluation over an empty store."""
    plan = sharding.plan(parsed)
    wire = [orjson.loads(orjson.dumps(sharding.partials_to_json(sharding.partial(plan, t, s, subquery_step))))
            for s in parts]
    leaves = sharding.merge(plan, [sharding.partials_from_json(w) for w in wire])
    return evaluate(plan.expr, t, SeriesStore(), subquery_step=subquery_step, leaves=leaves)


def run_eval(cmd: Eval, store: SeriesStore, semantics: Semantics, parts: list[SeriesStore] | None = None) -> str | None:
    """None if the case passes, else what differs. ``parts``: evaluate an instant query partitioned."""
    try:
        parsed = parse(cmd.expr, semantics)
        if cmd.is_range:
            value: object = evaluate_range(parsed, cmd.start, cmd.end, cmd.step, store, subquery_step=60.0)
        elif parts:
            value = evaluate_partitioned(parsed, cmd.start, parts)
        else:
            value = evaluate(parsed, cmd.start, store, subquery_step=60.0)
    except (CoreError, ValueError, ArithmeticError) as exc:
        return None if cmd.fail else f"error: {exc}"
    if cmd.fail:
        return "expected an error, got a result"
    if isinstance(value, Scalar):
        if not cmd.scalar:
            return f"expected a vector, got scalar {value.value}"
        want = cmd.expected[0].values[0]
        return None if almost_equal(float(want), value.value) else f"expected scalar {want}, got {value.value}"  # type: ignore[arg-type]
    if cmd.scalar and not cmd.is_range:
        return "expected a scalar, got a vector"
    assert isinstance(value, list)
    if value and isinstance(value[0], SeriesData):
        if cmd.is_range:
            return _compare_matrix(value, cmd.expected, cmd.start, cmd.end, cmd.step)
        if cmd.range_result is None:
            return "got a range vector: expected 'expect range vector from ... to ... step ...'"
        start, end, step = cmd.range_result
        return _compare_matrix(value, cmd.expected, start, end, step)
    if cmd.range_result is not None and value:
        return "expected a range vector, got an instant vector"
    return _compare_vector(value, cmd.expected, cmd.ordered)


def _show(labels: dict[str, str]) -> str:
    name = labels.get(NAME, "")
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != NAME)
    return f"{name}{{{inner}}}"


def _compare_vector(got: list, expected: list[Expected], ordered: bool) -> str | None:
    want = {labels_key(e.labels): e for e in expected}
    seen = set()
    for pos, s in enumerate(got, start=1):
        key = labels_key(s.labels)
        e = want.get(key)
        if e is None:
            return f"unexpected {_show(s.labels)} {s.value}"
        if ordered and e.position != pos:
            return f"expected {_show(s.labels)} at position {e.position}, got it at {pos}"
        x = e.values[0]
        if not isinstance(x, float) or not almost_equal(x, s.value):
            return f"expected {x} for {_show(s.labels)}, got {s.value}"
        seen.add(key)
    missing = [e for k, e in want.items() if k not in seen]
    return f"expected {_show(missing[0].labels)} {missing[0].values[0]}, not in the result" if missing else None


def _compare_matrix(got: list[SeriesData], expected: list[Expected], start: float, end: float,
                    step: float) -> str | None:
    want = {labels_key(e.labels): e for e in expected}
    seen = set()
    for s in got:
        key = labels_key(s.labels)
        e = want.get(key)
        if e is None:
            return f"unexpected {_show(s.labels)} with {len(s.ts)} points"
        points = [(start + i * step, v) for i, v in enumerate(e.values) if v is not None and v is not STALE]
        if start + (len(e.values) - 1) * step > end + 1e-9:
            return f"expected {len(e.values)} points for {_show(e.labels)}: more than the range holds"
        got_points = list(zip(s.ts.tolist(), s.values.tolist(), strict=True))
        if len(points) != len(got_points):
            return f"expected {len(points)} points for {_show(e.labels)}, got {got_points}"
        for (t, v), (gt, gv) in zip(points, got_points, strict=True):
            if abs(t - gt) > 0.0005 or not almost_equal(float(v), gv):
                return f"expected {v} at {t:g}s for {_show(e.labels)}, got {gv} at {gt:g}s"
        seen.add(key)
    missing = [e for k, e in want.items() if k not in seen]
    return f"expected {_show(missing[0].labels)}, not in the result" if missing else None
