"""Prometheus 3's duration expressions (`x[26m+4m]`, `x[1h/2:5s*2]`, `x offset (2 * 1m)`, `x[step()+1ms]`,
`x offset min_of(range(), 8s)`), folded into plain durations before parsing: promql-parser does not know
them, and for a given query they are constants.

Grammar as promql/parser's duration expressions (promql/durations.go evaluates them): durations (`1h30m`,
`500ms`) and numbers (seconds) combined with `+ - * / % ^`, unary minus, parentheses, `step()` and
`range()` (the query's step and end - start, both 0 for an instant query) and `min_of(a, b)`/`max_of(a, b)`;
the result is rounded to whole milliseconds. After `offset`, without parentheses, only a signed term is
the duration (`x offset step()*2` multiplies the selected value by 2). An expression reading the query
is folded only when the query is given (:func:`reads_query` tells the caller to parse per query).
"""

from __future__ import annotations

import math
import re

from watchkeeper.core.errors import CoreError

_TOKEN = re.compile(r"\s*(?:(?P<dur>(?:\d+(?:ms|[smhdwy]))+)|(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
                    r"|(?P<query>(?i:step|range)\s*\(\s*\))|(?P<fn>(?i:min_of|max_of))\s*(?=\()"
                    r"|(?P<op>[-+*/%^(),]))")
_READS_QUERY = re.compile(r"(?i:\b(?:step|range)\s*\(\s*\))")
Query = tuple[float, float]  # the query's step and range (end - start), seconds
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
_PART = re.compile(r"(\d+)(ms|[smhdwy])")


class DurationExprError(CoreError):
    """A duration expression that does not evaluate (division by zero, a negative range...)."""


def _tokens(text: str) -> list[tuple[str, object]] | None:
    out: list[tuple[str, object]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            return None if text[pos:].strip() else out
        pos = m.end()
        if m["dur"]:
            out.append(("n", sum(int(n) * _UNIT[u] for n, u in _PART.findall(m["dur"]))))
        elif m["query"]:
            out.append(("q", m["query"].split("(")[0].strip().lower()))
        elif m["fn"]:
            out.append(("fn", m["fn"].lower()))
        elif m["num"]:
            out.append(("n", float(m["num"])))
        else:
            out.append(("op", m["op"]))
    return out


class _Fold:
    """Recursive descent: sum := product (('+'|'-') product)*; product := unary (('*'|'/'|'%') unary)*;
    unary := '-' unary | '+' unary | power; power := atom ('^' unary)?; atom := number | '(' sum ')'."""

    def __init__(self, tokens: list[tuple[str, object]], query: Query) -> None:
        self.t, self.i, self.query = tokens, 0, query

    def peek(self) -> object:
        return self.t[self.i][1] if self.i < len(self.t) and self.t[self.i][0] == "op" else None

    def sum(self) -> float:
        v = self.product()
        while self.peek() in ("+", "-"):
            op = self.t[self.i][1]
            self.i += 1
            w = self.product()
            v = v + w if op == "+" else v - w
        return v

    def product(self) -> float:
        v = self.unary()
        while self.peek() in ("*", "/", "%"):
            op = self.t[self.i][1]
            self.i += 1
            w = self.unary()
            if op == "*":
                v *= w
            elif w == 0:
                raise DurationExprError("division by zero in a duration expression")
            else:
                v = v / w if op == "/" else math.fmod(v, w)
        return v

    def unary(self) -> float:
        if self.peek() in ("-", "+"):
            op = self.t[self.i][1]
            self.i += 1
            v = self.unary()
            return -v if op == "-" else v
        return self.power()

    def power(self) -> float:
        v = self.atom()
        if self.peek() == "^":
            self.i += 1
            v = float(v ** self.unary())
        return v

    def atom(self) -> float:
        if self.i >= len(self.t):
            raise DurationExprError("incomplete duration expression")
        kind, value = self.t[self.i]
        self.i += 1
        if kind == "n":
            return float(value)  # type: ignore[arg-type]
        if kind == "q":
            return self.query[0] if value == "step" else self.query[1]
        if kind == "fn":
            if self.peek() != "(":
                raise DurationExprError(f"{value} needs two arguments in parentheses")
            self.i += 1
            a = self.sum()
            if self.peek() != ",":
                raise DurationExprError(f"{value} needs two arguments")
            self.i += 1
            b = self.sum()
            if self.peek() != ")":
                raise DurationExprError(f"missing ')' after the arguments of {value}")
            self.i += 1
            if math.isnan(a) or math.isnan(b):
                return math.nan
            return min(a, b) if value == "min_of" else max(a, b)
        if value == "(":
            v = self.sum()
            if self.peek() != ")":
                raise DurationExprError("missing ')' in a duration expression")
            self.i += 1
            return v
        raise DurationExprError(f"unexpected {value!r} in a duration expression")


def reads_query(expr: str) -> bool:
    """Whether ``expr`` may hold a duration expression reading the query (`step()`, `range()`)."""
    return _READS_QUERY.search(expr) is not None


def fold(text: str, query: Query | None = None) -> float | None:
    """The seconds a duration expression stands for; None if ``text`` is not one, is a plain duration
    (which needs no folding), or reads the query and ``query`` (step, range) is not given."""
    tokens = _tokens(text)
    if not tokens or not any(k != "n" for k, _ in tokens):
        return None
    if query is None and any(k == "q" for k, _ in tokens):
        return None
    f = _Fold(tokens, query or (0.0, 0.0))
    value = f.sum()
    if f.i != len(tokens):
        return None
    if math.isnan(value) or math.isinf(value):
        raise DurationExprError("duration is NaN or infinite")
    return value


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def _offset_term(expr: str, j: int) -> int:
    """The end of the term that starts at ``j`` after `offset` (and its sign): a parenthesised expression,
    `step()`/`range()`, or a `min_of`/`max_of` call; ``j`` itself when none of them starts there."""
    m = re.compile(r"(?i:(?:step|range)\s*\(\s*\))").match(expr, j)
    if m:
        return m.end()
    m = re.compile(r"(?i:min_of|max_of)\s*(?=\()").match(expr, j)
    k = m.end() if m else j
    if k < len(expr) and expr[k] == "(":
        depth = 0
        while k < len(expr):
            depth += {"(": 1, ")": -1}.get(expr[k], 0)
            if depth == 0:
                return k + 1
            k += 1
    return j


def rewrite(expr: str, query: Query | None = None) -> str:
    """``expr`` with every duration expression in `[...]` and after `offset` folded; those reading the
    query only when ``query`` (its step and range, seconds) is given."""
    out: list[str] = []
    i, n = 0, len(expr)
    while i < n:
        ch = expr[i]
        if ch in "\"'`":
            j = i + 1
            while j < n and expr[j] != ch:
                j += 2 if expr[j] == "\\" and ch != "`" else 1
            out.append(expr[i:j + 1])
            i = j + 1
        elif ch == "[":
            j = expr.find("]", i)
            if j < 0:
                out.append(expr[i:])
                break
            parts = expr[i + 1:j].split(":")
            folded = []
            for part in parts:
                value = fold(part, query) if len(parts) <= 2 else None
                folded.append(part if value is None else _ms(value))
            out.append("[" + ":".join(folded) + "]")
            i = j + 1
        elif expr.startswith("offset", i) and (i == 0 or not (expr[i - 1].isalnum() or expr[i - 1] == "_")):
            j = i + len("offset")
            while j < n and expr[j].isspace():
                j += 1
            sign = ""
            if j < n and expr[j] in "-+":
                sign, j = expr[j].replace("+", ""), j + 1
                while j < n and expr[j].isspace():
                    j += 1
            k = _offset_term(expr, j)
            if k > j:
                value = fold(expr[j:k], query)
                if value is not None:
                    value = -value if sign else value
                    # promql-parser refuses `offset 0ms`; no offset means the same
                    out.append(f"offset {'-' if value < 0 else ''}{_ms(abs(value))}" if round(value * 1000) else "")
                    i = k
                    continue
            out.append("offset")
            i += len("offset")
        else:
            out.append(ch)
            i += 1
    return "".join(out)
