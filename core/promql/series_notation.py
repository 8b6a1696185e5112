"""promtool's expanding series notation (``input_series`` values) and series selectors.

Follows promql/parser's ParseSeriesDesc: ``a+bxn`` is n+1 values starting at a, each adding b (by
repeated addition, as Go does, so rounding matches); ``axn`` is a repeated n+1 times; ``_`` is a
missing point and ``_xn`` n of them; ``stale`` is a staleness marker. There are no hex numbers here:
``0x3`` is 0 four times, as in promtool.
"""

from __future__ import annotations

import re
from enum import Enum

import promql_parser as pp

from watchkeeper.core.errors import CoreError


class SeriesNotationError(CoreError):
    """A values string or series selector promtool would reject."""


class Stale(Enum):
    """The ``stale`` keyword: Prometheus' staleness marker at this step."""

    STALE = "stale"


STALE = Stale.STALE

_NUMBER = r"(?:[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?|[0-9]+\.|[Ii]nf|NaN)"
_EXPAND = re.compile(rf"^(?P<start>[+-]?{_NUMBER})(?:(?P<sign>[+-])(?P<step>{_NUMBER}))?x(?P<times>[0-9]+)$")
_BLANKS = re.compile(r"^_x(?P<times>[0-9]+)$")
_SINGLE = re.compile(rf"^[+-]?{_NUMBER}$")


def _number(text: str) -> float:
    body = text.lstrip("+-")
    sign = -1.0 if text.startswith("-") else 1.0
    if body.lower() == "inf":
        return sign * float("inf")
    return sign * float(body)


def expand_series(text: str) -> list[float | Stale | None]:
    """Expand a promtool ``values`` string: one entry per interval step (None = no point)."""
    out: list[float | Stale | None] = []
    for item in text.split():
        if item == "_":
            out.append(None)
        elif item == "stale":
            out.append(STALE)
        elif m := _BLANKS.match(item):
            out.extend([None] * int(m["times"]))
        elif m := _EXPAND.match(item):
            value = _number(m["start"])
            step = _number(m["sign"] + m["step"]) if m["step"] else 0.0
            for _ in range(int(m["times"]) + 1):
                out.append(value)
                value += step
        elif _SINGLE.match(item):
            out.append(_number(item))
        else:
            raise SeriesNotationError(f"invalid value {item!r} in series values {text!r}: expected a number, "
                                      "'_', 'stale', 'a+bxn', 'a-bxn', 'axn' or '_xn'")
    return out


def parse_series_line(series_selector: str) -> tuple[str, dict[str, str]]:
    """``name{a="b"}`` (or ``{__name__="name", a="b"}``) to the metric name and its other labels."""
    try:
        node = pp.parse(series_selector)
    except ValueError as exc:
        raise SeriesNotationError(f"invalid series {series_selector!r}: {exc}") from exc
    if not isinstance(node, pp.VectorSelector):
        raise SeriesNotationError(f"invalid series {series_selector!r}: expected name{{label=\"value\", ...}}")
    name = node.name or ""
    labels: dict[str, str] = {}
    for m in node.matchers.matchers:
        if m.op != pp.MatchOp.Equal:
            raise SeriesNotationError(f"invalid series {series_selector!r}: only '=' may set a label")
        if m.name == "__name__":
            name = m.value
        elif m.value:
            labels[m.name] = m.value
    if not name:
        raise SeriesNotationError(f"invalid series {series_selector!r}: no metric name")
    return name, labels


_DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
_DURATION_UNITS = (365 * 86400.0, 7 * 86400.0, 86400.0, 3600.0, 60.0, 1.0, 0.001)


def parse_duration(text: str) -> float:
    """A Prometheus duration (``1h30m``, ``15s``, ``0s``, ``500ms``) in seconds."""
    text = str(text).strip()
    if text == "0":
        return 0.0
    m = _DURATION.match(text)
    if not text or m is None:
        raise SeriesNotationError(f"invalid duration {text!r}: expected e.g. 30s, 5m, 1h30m")
    return sum(float(part) * unit for part, unit in zip(m.groups(), _DURATION_UNITS, strict=True) if part)


def parse_metric(text: str) -> dict[str, str]:
    """promtool's ``labels`` of an expected sample: ``name{a="b"}`` or ``{a="b"}`` to a label dict (incl. __name__)."""
    if text.strip() in ("", "{}"):
        return {}
    try:
        node = pp.parse(text)
    except ValueError as exc:
        raise SeriesNotationError(f"invalid labels {text!r}: {exc}") from exc
    if not isinstance(node, pp.VectorSelector):
        raise SeriesNotationError(f"invalid labels {text!r}: expected name{{label=\"value\", ...}}")
    labels = {m.name: m.value for m in node.matchers.matchers if m.value}
    if node.name:
        labels["__name__"] = node.name
    return labels
