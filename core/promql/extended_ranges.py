"""Prometheus 3's extended range selectors: the ``anchored`` and ``smoothed`` modifiers.

``rate(x[5m] anchored)`` measures from the last sample at or before the range start (looked up as far as
the lookback delta) to the last one in the range, without extrapolation; ``rate(x[5m] smoothed)``
interpolates the counter linearly at both ends of the range; ``x smoothed`` interpolates an instant
selector between the samples around the evaluation time. Semantics as promql/functions.go
(extendedRate, pickFirstSampleIndices) and engine.go (smoothSeries, extendFloats) describe them.

The ``promql-parser`` package does not know the two keywords. Rather than fork it, :func:`rewrite` moves
each keyword into its selector as a marker matcher on an impossible label name (``__wk_anchored__=""``
matches every series, as no series carries that label), which the evaluator reads back with
:func:`marker` and removes before selecting. Pure functions of numpy arrays (times in milliseconds).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

import numpy as np

from watchkeeper.core.errors import CoreError

Extension = Literal["anchored", "smoothed"]
MARKERS: dict[str, Extension] = {"__wk_anchored__": "anchored", "__wk_smoothed__": "smoothed"}
_MARKER_OF = {v: k for k, v in MARKERS.items()}
# The functions each modifier may feed (functions.go's AnchoredSafeFunctions / SmoothedSafeFunctions).
SAFE_FUNCTIONS: dict[Extension, tuple[str, ...]] = {
    "anchored": ("changes", "delta", "increase", "rate", "resets"),
    "smoothed": ("delta", "increase", "rate"),
}
_TOKEN = re.compile(r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)"""
                    r"|(?P<ident>[A-Za-z_][A-Za-z0-9_:]*)"
                    r"|(?P<num>(?:\d+(?:ms|[smhdwy]))+|(?:0[xX][0-9a-fA-F]+|\d*\.?\d+(?:[eE][+-]?\d+)?)|[Ii]nf|NaN)"
                    r"|(?P<op>=~|!~|!=|==|>=|<=|[-+*/%^@(){}\[\],=<>:!]))")
# Words after which an identifier is an operand (a metric called `anchored`), not a modifier.
_OPERATOR_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
                   "bool", "offset", "atan2"}


class ExtendedRangeError(CoreError):
    """An `anchored`/`smoothed` modifier where Prometheus refuses one (after a subquery, twice...)."""


def tokenize(expr: str) -> list[tuple[str, str, int, int]]:
    """(kind, text, start, end) of each token; kind is str, ident, num or op. Unknown characters end it
    (the parser will report them)."""
    out = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None or m.end() == pos:
            break
        kind = m.lastgroup or "op"
        out.append((kind, m.group(kind), m.start(kind), m.end()))
        pos = m.end()
    return out


def _matching_open(tokens: list[tuple[str, str, int, int]], j: int, open_: str, close: str) -> int:
    depth = 0
    while j >= 0:
        if tokens[j][1] == close:
            depth += 1
        elif tokens[j][1] == open_:
            depth -= 1
            if depth == 0:
                return j
        j -= 1
    raise ExtendedRangeError(f"unbalanced {close!r}")


def rewrite(expr: str) -> str:
    """``expr`` with every `anchored`/`smoothed` keyword moved into its selector as a marker matcher."""
    tokens = tokenize(expr)
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement), applied right to left
    for k, (kind, text, start, end) in enumerate(tokens):
        word = text.lower()
        if kind != "ident" or word not in _MARKER_OF or k == 0:
            continue
        prev_kind, prev_text = tokens[k - 1][0], tokens[k - 1][1]
        operand_end = prev_text in (")", "]", "}") or prev_kind == "num" or (
            prev_kind == "ident" and prev_text.lower() not in _OPERATOR_WORDS)
        if not operand_end:
            continue  # a metric named like the keyword
        if prev_text.lower() in _MARKER_OF:
            raise ExtendedRangeError("anchored and smoothed modifiers cannot be used together")
        if k + 1 < len(tokens) and tokens[k + 1][1] in ("{", "("):
            continue  # `anchored{...}` or a function call: a name, not a modifier
        edits.append((start, end, ""))
        edits.append(_insertion(tokens, k - 1, word))
    for start, end, replacement in sorted(edits, key=lambda e: e[0], reverse=True):
        expr = expr[:start] + replacement + expr[end:]
    return expr


def _insertion(tokens: list[tuple[str, str, int, int]], j: int, word: Extension) -> tuple[int, int, str]:
    """Where the marker of ``word`` goes: inside the braces of the selector that ends at token ``j``,
    stepping back over its range, offset and @ modifier."""
    marker = f'{_MARKER_OF[word]}=""'
    while j >= 0:
        kind, text, _, end = tokens[j]
        if text == ")" and j >= 3 and tokens[j - 1][1] == "(" and tokens[j - 2][1].lower() in ("start", "end") \
                and tokens[j - 3][1] == "@":
            j -= 4
        elif kind == "num" or (kind == "ident" and text.lower() in ("inf", "nan")):
            back = j - 1
            if back >= 0 and tokens[back][1] in ("-", "+"):
                back -= 1
            if back < 0 or tokens[back][1].lower() not in ("@", "offset"):
                raise ExtendedRangeError(f"{word} modifier not implemented for a number")
            j = back - 1
        elif text == "]":
            bracket = _matching_open(tokens, j, "[", "]")
            if any(t[1] == ":" for t in tokens[bracket:j]) or (bracket > 0 and tokens[bracket - 1][1] == ")"):
                raise ExtendedRangeError(f"{word} modifier is not supported for subqueries")
            j = bracket - 1
        elif text == "}":
            brace = _matching_open(tokens, j, "{", "}")
            empty = brace + 1 == j
            pos = tokens[brace][3]
            return pos, pos, marker if empty else marker + ","
        elif kind == "ident":
            return end, end, "{" + marker + "}"
        else:
            break
    raise ExtendedRangeError(f"{word} modifier not implemented for this expression")


def marker(matcher_names: Iterable[str]) -> Extension | None:
    """Which modifier a selector carries, from its matchers' label names."""
    found = {MARKERS[n] for n in matcher_names if n in MARKERS}
    if len(found) > 1:
        raise ExtendedRangeError("anchored and smoothed modifiers cannot be used together")
    return found.pop() if found else None


# ------------------------------------------------------------------------------------------- kernels


def _search(n: int, pred: object) -> int:
    """Go's sort.Search: the smallest i in [0, n) with pred(i), else n."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if pred(mid):  # type: ignore[operator]
            hi = mid
        else:
            lo = mid + 1
    return lo


def _interpolate(t1: int, y1: float, t2: int, y2: float, t: int, is_counter: bool) -> float:
    if is_counter and y2 < y1:
        y1 = 0.0  # a counter reset: the counter restarted from zero
    return y1 + (y2 - y1) * float(t - t1) / float(t2 - t1)


def extended_rate(ts: np.ndarray, values: np.ndarray, range_start: int, range_end: int, range_s: float,
                  smoothed: bool, is_counter: bool, is_rate: bool) -> float | None:
    """functions.go extendedRate over one series' points (ms times, no staleness markers), read from
    (range_start - lookback, range_end] (anchored) or to range_end + lookback (smoothed); None: no sample."""
    t, f = ts.tolist(), values.tolist()
    if not t:
        return None
    last = len(t) - 1
    first = max(0, _search(last, lambda i: t[i] > range_start) - 1)
    if smoothed:
        last = _search(last, lambda i: t[i] >= range_end)
    if t[last] <= range_start or (smoothed and t[first] > range_end):
        return None
    left = f[first]
    if smoothed and t[first] < range_start:
        left = _interpolate(t[first], f[first], t[first + 1], f[first + 1], range_start, is_counter)
    right = f[last]
    if smoothed and last > 0 and t[last] > range_end:
        right = _interpolate(t[last - 1], f[last - 1], t[last], f[last], range_end, is_counter)
    result = right - left
    if is_counter:
        if t[first] <= range_start:
            first += 1
        if t[last] >= range_end:
            last -= 1
        correction, prev = 0.0, left
        for v in f[first:last + 1]:
            if v < prev:
                correction += prev
            prev = v
        if right < prev:
            correction += prev
        result += correction
    return result / range_s if is_rate else result


def anchored_start(ts: np.ndarray, range_start: int) -> int | None:
    """pickFirstSampleIndices: the index of the last sample at or before the range start (the anchor),
    else 0; None when no sample lies after the range start (nothing to measure)."""
    t = ts.tolist()
    before = _search(len(t), lambda i: t[i] > range_start) - 1
    if before + 1 >= len(t):
        return None
    return max(before, 0)


def smoothed_value(ts: np.ndarray, values: np.ndarray, at: int) -> float | None:
    """smoothSeries at one time: the sample at ``at``, else the line between its neighbours, else the
    last sample before it; None before the first sample. Points span (at - lookback, at + lookback]."""
    t, f = ts.tolist(), values.tolist()
    i = _search(len(t), lambda k: t[k] >= at)
    if i < len(t) and t[i] == at:
        return f[i]
    if 0 < i < len(t):
        return _interpolate(t[i - 1], f[i - 1], t[i], f[i], at, is_counter=False)
    return f[i - 1] if i > 0 else None


def extend_floats(ts: np.ndarray, values: np.ndarray, mint: int, maxt: int,
                  smoothed: bool) -> tuple[np.ndarray, np.ndarray]:
    """engine.go extendFloats: a bare anchored/smoothed range selector's points, with the values at the
    range's two ends added as points at mint and maxt (empty when nothing lies after mint)."""
    t, f = ts.tolist(), values.tolist()
    empty = (np.empty(0, dtype=np.int64), np.empty(0))
    if not t:
        return empty
    last = len(t) - 1
    first = max(0, _search(last, lambda i: t[i] > mint) - 1)
    if smoothed:
        last = _search(last, lambda i: t[i] >= maxt)
    if t[last] <= mint:
        return empty
    left = f[first]
    if smoothed and t[first] < mint:
        left = _interpolate(t[first], f[first], t[first + 1], f[first + 1], mint, False)
    right = f[last]
    if smoothed and last > 0 and t[last] > maxt:
        right = _interpolate(t[last - 1], f[last - 1], t[last], f[last], maxt, False)
    if t[first] <= mint:
        first += 1
    if t[last] >= maxt:
        last -= 1
    out_t = [mint, *t[first:last + 1], maxt]
    out_f = [left, *f[first:last + 1], right]
    return np.array(out_t, dtype=np.int64), np.array(out_f)
