"""Prometheus 3's duration expressions (`x[26m+4m]`, `x[1h/2:5s*2]`, `x offset (2 * 1m)`), folded into plain
durations before parsing: promql-parser does not know them, and with constant operands they are constants.

Grammar as promql/parser's duration expressions: durations (`1h30m`, `500ms`) and numbers (seconds)
combined with `+ - * / % ^`, unary minus and parentheses; the result is rounded to whole milliseconds.
Expressions reading the query (`step()`, `min_of(...)`) are left as written, so the parser names them.
"""

from __future__ import annotations

import math
import re

from core.errors import CoreError

_TOKEN = re.compile(r"\s*(?:(?P<dur>(?:\d+(?:ms|[smhdwy]))+)|(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
                    r"|(?P<op>[-+*/%^()]))")
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
        elif m["num"]:
            out.append(("n", float(m["num"])))
        else:
            out.append(("op", m["op"]))
    return out


class _Fold:
    """Recursive descent: sum := product (('+'|'-') product)*; product := unary (('*'|'/'|'%') unary)*;
    unary := '-' unary | '+' unary | power; power := atom ('^' unary)?; atom := number | '(' sum ')'."""

    def __init__(self, tokens: list[tuple[str, object]]) -> None:
        self.t, self.i = tokens, 0

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
        if value == "(":
            v = self.sum()
            if self.peek() != ")":
                raise DurationExprError("missing ')' in a duration expression")
            self.i += 1
            return v
        raise DurationExprError(f"unexpected {value!r} in a duration expression")


def fold(text: str) -> float | None:
    """The seconds a constant duration expression stands for; None if ``text`` is not one (or is a plain
    duration, which needs no folding)."""
    tokens = _tokens(text)
    if not tokens or not any(k == "op" for k, _ in tokens):
        return None
    f = _Fold(tokens)
    value = f.sum()
    if f.i != len(tokens):
        return None
    return value


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def rewrite(expr: str) -> str:
    """``expr`` with every constant duration expression in `[...]` and after `offset` folded."""
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
                value = fold(part) if len(parts) <= 2 else None
                folded.append(part if value is None else _ms(value))
            out.append("[" + ":".join(folded) + "]")
            i = j + 1
        elif expr.startswith("offset", i) and (i == 0 or not (expr[i - 1].isalnum() or expr[i - 1] == "_")):
            j = i + len("offset")
            while j < n and expr[j].isspace():
                j += 1
            sign = ""
            if j < n and expr[j] == "-":
                sign, j = "-", j + 1
                while j < n and expr[j].isspace():
                    j += 1
            if j < n and expr[j] == "(":
                depth, k = 0, j
                while k < n:
                    depth += {"(": 1, ")": -1}.get(expr[k], 0)
                    if depth == 0:
                        break
                    k += 1
                value = fold(expr[j:k + 1])
                if value is not None:
                    value = -value if sign else value
                    out.append(f"offset {'-' if value < 0 else ''}{_ms(abs(value))}")
                    i = k + 1
                    continue
            out.append("offset")
            i += len("offset")
        else:
            out.append(ch)
            i += 1
    return "".join(out)
