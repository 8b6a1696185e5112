"""PromQL value types shared by the store and the evaluator.

Times are float epoch seconds. Prometheus' staleness marker is a NaN with a fixed bit pattern, kept
as such in the value arrays so that a marker travels through numpy without a side channel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from watchkeeper.core.promql.re2 import compile_re2

STALE_NAN_BITS = 0x7FF0000000000002
STALE_NAN: float = float(np.array([STALE_NAN_BITS], dtype=np.uint64).view(np.float64)[0])

MatchOpName = Literal["=", "!=", "=~", "!~"]


def stale_mask(values: np.ndarray) -> np.ndarray:
    """True where a value is Prometheus' staleness marker (not any NaN: a plain NaN is a real sample)."""
    return np.asarray(values, dtype=np.float64).view(np.uint64) == np.uint64(STALE_NAN_BITS)


def is_stale(value: float) -> bool:
    return bool(stale_mask(np.array([value], dtype=np.float64))[0])


@dataclass(frozen=True)
class Matcher:
    """One label matcher; regexes are Go RE2, anchored at both ends as in Prometheus.

    ``dotall``: whether `.` matches a newline, as in Prometheus 3 (Prometheus 2 and promtool 2.42: no).
    An invalid or untranslatable regex raises RegexError (a ValueError) when the matcher is built.
    """

    name: str
    op: MatchOpName
    value: str
    dotall: bool = False
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.op in ("=~", "!~"):
            object.__setattr__(self, "_regex", compile_re2(self.value, self.dotall))

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self._regex is not None
        hit = self._regex.fullmatch(actual) is not None
        return hit if self.op == "=~" else not hit


@dataclass
class SeriesData:
    """One series over a time range: labels include ``__name__`` while it has one."""

    labels: dict[str, str]
    ts: np.ndarray
    values: np.ndarray


@dataclass
class VectorSample:
    """One element of an instant vector."""

    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Scalar:
    """A PromQL scalar: a bare float, kept apart from a one-element vector."""

    value: float

    def __float__(self) -> float:
        return self.value


Vector = list[VectorSample]
Matrix = list[SeriesData]


def labels_key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """A hashable, order-independent identity of a label set."""
    return tuple(sorted(labels.items()))
