"""What a backtest says about alert transitions: each alert's spans (pending, firing, resolved), a per-rule
summary, the difference from the transitions recorded live, and the threshold of a rule's expression.

Pure: alert events in (from the replayed engine, or from the `alerts` table), figures out. The replay
itself runs the worker's own `RulesStep` (`agents.rules_replay`); nothing here evaluates a rule.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import promql_parser as pp

from watchkeeper.schemas.alerts import AlertEvent

COMPARISONS = {">", ">=", "<", "<=", "==", "!="}
_MIRROR = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "==": "==", "!=": "!="}
DEFAULT_FLAP_WINDOW = 1800.0  # an alert firing again this soon after it resolved is a flap


@dataclass(frozen=True)
class Threshold:
    """`expr op value` at the top of a rule's expression: what to plot, and the line to draw."""

    expr: str
    op: str
    value: float


def threshold_of(expr: str) -> Threshold | None:
    """The scalar comparison a rule's expression ends in (`rate(x[5m]) > 0.5`, `10 < y`), else None.
    `bool` comparisons are not filters, so they have no threshold."""
    node: Any = pp.parse(expr)
    while isinstance(node, pp.ParenExpr):
        node = node.expr
    if not isinstance(node, pp.BinaryExpr) or str(node.op) not in COMPARISONS:
        return None
    if node.modifier is not None and node.modifier.return_bool:
        return None
    lhs, rhs, op = node.lhs, node.rhs, str(node.op)
    if isinstance(rhs, pp.NumberLiteral) and not isinstance(lhs, pp.NumberLiteral):
        return Threshold(str(lhs), op, float(rhs.val))
    if isinstance(lhs, pp.NumberLiteral) and not isinstance(rhs, pp.NumberLiteral):
        return Threshold(str(rhs), _MIRROR[op], float(lhs.val))
    return None


@dataclass
class AlertSpan:
    """One alert from going pending (or straight to firing) to resolving; None: not (yet) reached."""

    rule: str
    fingerprint: str
    labels: dict[str, str]
    pending_at: float
    firing_at: float | None = None
    resolved_at: float | None = None
    value: float = math.nan  # at its last transition
    annotations: dict[str, str] = field(default_factory=dict)

    def firing_seconds(self, start: float, end: float) -> float:
        """Firing time inside [start, end]."""
        if self.firing_at is None:
            return 0.0
        stop = end if self.resolved_at is None else min(self.resolved_at, end)
        return max(0.0, stop - max(self.firing_at, start))


def alert_spans(events: Iterable[AlertEvent]) -> list[AlertSpan]:
    """Events grouped into spans per alert, in time order (an alert's events must be in time order,
    as the engine emits them). A `firing` with no open span opens one at its `starts_at`."""
    open_: dict[str, AlertSpan] = {}
    out: list[AlertSpan] = []
    for e in sorted(events, key=lambda e: (e.event_time, _STATE_ORDER[e.state])):
        span = open_.get(e.fingerprint)
        if span is None:
            if e.state == "resolved":
                continue  # its start is before what was read
            span = AlertSpan(e.rule, e.fingerprint, dict(e.labels), e.starts_at)
            open_[e.fingerprint] = span
            out.append(span)
        span.value, span.annotations = e.value, dict(e.annotations)
        if e.state == "firing":
            span.firing_at = e.event_time
        elif e.state == "resolved":
            span.resolved_at = e.event_time
            del open_[e.fingerprint]
    return out


_STATE_ORDER = {"pending": 0, "firing": 1, "resolved": 2}


@dataclass
class RuleSummary:
    rule: str
    alerts: int  # spans that overlap the range
    fired: int  # of them, how many reached firing
    firing_seconds: float
    flaps: int  # fired again within the flap window after the same alert resolved
    pending_only: int  # went pending and resolved without firing
    pending_to_firing: list[float]  # seconds, per alert that fired after being pending

    @property
    def median_pending_to_firing(self) -> float:
        return statistics.median(self.pending_to_firing) if self.pending_to_firing else math.nan


def summarize(spans: Sequence[AlertSpan], rules: Sequence[str], start: float, end: float,
              flap_window: float = DEFAULT_FLAP_WINDOW) -> list[RuleSummary]:
    """One summary per rule name (in `rules` order, every rule, also those that never went pending)."""
    by_rule: dict[str, list[AlertSpan]] = {r: [] for r in rules}
    for s in spans:
        if s.pending_at <= end and (s.resolved_at is None or s.resolved_at >= start):
            by_rule.setdefault(s.rule, []).append(s)
    out = []
    for rule, group in by_rule.items():
        flaps = 0
        last_resolved: dict[str, float] = {}
        for s in sorted(group, key=lambda s: s.pending_at):
            if s.firing_at is not None:
                before = last_resolved.get(s.fingerprint)
                if before is not None and s.firing_at - before < flap_window:
                    flaps += 1
                if s.resolved_at is not None:
                    last_resolved[s.fingerprint] = s.resolved_at
        out.append(RuleSummary(
            rule=rule,
            alerts=len(group),
            fired=sum(1 for s in group if s.firing_at is not None),
            firing_seconds=sum(s.firing_seconds(start, end) for s in group),
            flaps=flaps,
            pending_only=sum(1 for s in group if s.firing_at is None and s.resolved_at is not None),
            pending_to_firing=[s.firing_at - s.pending_at for s in group if s.firing_at is not None],
        ))
    return out


Transition = tuple[str, str, float]  # (fingerprint, state, event time)


@dataclass
class Comparison:
    """Transitions of the backtest and of the live `alerts` table in the same range, matched exactly
    on (fingerprint, state, event time)."""

    matched: list[AlertEvent]
    only_backtest: list[AlertEvent]
    only_live: list[AlertEvent]

    @property
    def identical(self) -> bool:
        return not self.only_backtest and not self.only_live


def compare(backtest: Sequence[AlertEvent], live: Sequence[AlertEvent]) -> Comparison:
    def key(e: AlertEvent) -> Transition:
        return e.fingerprint, e.state, round(e.event_time, 3)  # the table keeps milliseconds

    live_keys = {key(e) for e in live}
    back_keys = {key(e) for e in backtest}
    return Comparison(
        matched=[e for e in backtest if key(e) in live_keys],
        only_backtest=[e for e in backtest if key(e) not in live_keys],
        only_live=[e for e in live if key(e) not in back_keys],
    )
