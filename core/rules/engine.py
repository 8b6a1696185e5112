"""The rule engine: each group evaluated at its event-time ticks (multiples of its interval, aligned to
the epoch), rules in file order, as Prometheus' rules manager does:

- a recording rule's result is written into the store at the tick (later rules of the group see it) and
  returned for publishing; a series it wrote at the previous tick and not now gets a staleness marker;
- an alerting rule drives `core.alert_state` (pending, firing after `for`, `keep_firing_for`, resolved)
  with labels and annotations templated from each sample, and writes `ALERTS` / `ALERTS_FOR_STATE`;
- an evaluation error leaves that rule's state untouched for the tick and goes to `failures` (bounded:
  counts per group and the last few per rule, `core.rules.eval_failures`), which the wiring logs and counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import orjson

from watchkeeper.core.alert_state import Alert, AlertRuleState, AlertState
from watchkeeper.core.errors import CoreError
from watchkeeper.core.promql.evaluator import (
    DEFAULT_SEMANTICS,
    DEFAULT_SUBQUERY_STEP,
    Leaves,
    Semantics,
    evaluate,
    parse,
)
from watchkeeper.core.promql.series_store import SeriesStore
from watchkeeper.core.promql.values import Scalar, VectorSample, labels_key
from watchkeeper.core.rules.eval_failures import EvalFailure, EvalFailures
from watchkeeper.core.rules.loader import Rule, RuleGroup
from watchkeeper.core.rules.templates import QuerySample, TemplateData, TemplateError, alert_labels, expand
from watchkeeper.schemas.alerts import AlertEvent, AlertSource
from watchkeeper.schemas.samples import Sample

Key = tuple[tuple[str, str], ...]
# The merge stage of partitioned evaluation (core.promql.sharding): the merged leaves of rule `index` of a
# group at tick t (None: evaluate that rule from the store alone).
LeavesFn = Callable[[RuleGroup, int, float], Leaves | None]


@dataclass
class EngineStep:
    alerts: list[AlertEvent] = field(default_factory=list)
    recorded: list[Sample] = field(default_factory=list)


class RuleEngine:
    def __init__(self, groups: list[RuleGroup], external_labels: Mapping[str, str] | None = None,
                 external_url: str = "", source: AlertSource = "rule",
                 subquery_step: float = DEFAULT_SUBQUERY_STEP, semantics: Semantics = DEFAULT_SEMANTICS,
                 leaves: LeavesFn | None = None) -> None:
        self.groups = groups
        # Partitioned evaluation: the values of the rules' partitioned subtrees, merged from every samples
        # partition; the expression is then evaluated from them and the store (the merge stage's own
        # series: recorded metrics, ALERTS). The expression evaluated must be the plan's (same nodes).
        self.leaves = leaves
        # of the templates' `query`; the rules' own expressions were parsed for it by the loader
        self.semantics = semantics
        self.subquery_step = subquery_step  # of `x[5m:]`: the global evaluation_interval, as Prometheus
        self.external_labels = dict(external_labels or {})
        self.external_url = external_url
        self.next_tick: dict[str, float] = {}
        self.states: dict[tuple[str, int], AlertRuleState] = {
            (g.name, i): AlertRuleState(r.alert, r.hold, r.keep_firing_for,
                                        source=g.source if g.source != "rule" else source)
            for g in groups for i, r in enumerate(g.rules) if r.alert}
        self.previous: dict[tuple[str, int], dict[Key, dict[str, str]]] = {}
        # Per rule, the ALERTS / ALERTS_FOR_STATE label sets (and keys) of its active alerts by (fingerprint,
        # state): built once per alert and state rather than at every tick (a cache, not state)
        self._alert_series: dict[tuple[str, int], dict[tuple[str, AlertState], _AlertSeries]] = {}
        self.failures = EvalFailures()

    # -- time --------------------------------------------------------------------------------------
    def start_at(self, origin: float) -> None:
        """Anchor every group's first tick: the first multiple of its interval at or after `origin`."""
        for g in self.groups:
            self.next_tick[g.name] = math.ceil(origin / g.interval) * g.interval

    def advance(self, store: SeriesStore, watermark: float) -> EngineStep:
        """Evaluate every tick at or before `watermark`, in time order (ties in group order). A group
        never started begins at the first tick at or after the first watermark it sees."""
        out = EngineStep()
        for g in self.groups:
            self.next_tick.setdefault(g.name, math.ceil(watermark / g.interval) * g.interval)
        while self.groups:
            t, gi = min((self.next_tick[g.name], i) for i, g in enumerate(self.groups))
            if t > watermark:
                break
            g = self.groups[gi]
            self.eval_group(g, t, store, out)
            self.next_tick[g.name] = t + g.interval
        return out

    # -- evaluation --------------------------------------------------------------------------------
    def eval_group(self, g: RuleGroup, t: float, store: SeriesStore, out: EngineStep) -> None:
        for i, r in enumerate(g.rules):
            try:
                leaves = self.leaves(g, i, t) if self.leaves is not None else None
                vec = _vector(evaluate(r.expr, t, store, subquery_step=self.subquery_step, leaves=leaves))
            except CoreError as exc:
                self.failures.add(EvalFailure(g.name, r.name, t, str(exc)))
                continue
            if r.record:
                self._record(g, i, r, t, vec, store, out)
            else:
                self._alert(g, i, r, t, vec, store, out)

    def _record(self, g: RuleGroup, i: int, r: Rule, t: float, vec: list[VectorSample], store: SeriesStore,
                out: EngineStep) -> None:
        assert r.record is not None
        current: dict[Key, dict[str, str]] = {}
        values: list[float] = []
        for s in vec:
            labels = dict(s.labels)
            labels["__name__"] = r.record
            for k, v in r.labels.items():
                if v:
                    labels[k] = v
                else:
                    labels.pop(k, None)
            key = labels_key(labels)
            if key in current:
                self.failures.add(EvalFailure(g.name, r.name, t, "vector contains metrics with the same labelset "
                                                          "after applying rule labels"))
                return
            current[key] = labels
            values.append(s.value)
        for labels, value in zip(current.values(), values, strict=True):
            store.append_one(r.record, labels, t, value)
            out.recorded.append(Sample(name=r.record, labels={k: v for k, v in labels.items() if k != "__name__"},
                                       ts=t, value=value))
        self._stale(g, i, r.record, current, t, store)

    def _stale(self, g: RuleGroup, i: int, name: str, current: dict[Key, dict[str, str]], t: float,
               store: SeriesStore) -> None:
        for key, labels in self.previous.get((g.name, i), {}).items():
            if key not in current:
                store.mark_stale(labels.get("__name__", name), labels, t)
        self.previous[(g.name, i)] = current

    def _alert(self, g: RuleGroup, i: int, r: Rule, t: float, vec: list[VectorSample], store: SeriesStore,
               out: EngineStep) -> None:
        assert r.alert is not None
        results: list[tuple[dict[str, str], float]] = []
        notes: dict[Key, dict[str, str]] = {}

        def query(q: str) -> list[QuerySample]:
            return _template_query(q, t, store, self.semantics)

        for s in vec:
            data = TemplateData(s.labels, s.value, self.external_labels, self.external_url, query)
            labels = alert_labels(s.labels, r.labels, data, r.alert)
            key = labels_key(labels)
            if key in notes:
                self.failures.add(EvalFailure(g.name, r.name, t, "vector contains metrics with the same labelset "
                                                          "after applying alert labels"))
                return
            notes[key] = {k: expand(tmpl, data) for k, tmpl in r.annotations.items()}
            results.append((labels, s.value))
        state = self.states[(g.name, i)]
        out.alerts += state.evaluate(t, results, lambda labels, value: notes[labels_key(dict(labels))])
        current: dict[Key, dict[str, str]] = {}
        known = self._alert_series.get((g.name, i), {})
        active: dict[tuple[str, AlertState], _AlertSeries] = {}
        for fp, a in state.active.items():
            if a.state in (AlertState.PENDING, AlertState.FIRING):
                series = known.get((fp, a.state)) or _alert_series(a)
                active[(fp, a.state)] = series
                alerts, alerts_key, for_state, for_state_key = series
                store.append_one("ALERTS", alerts, t, 1.0, key=alerts_key)
                current[alerts_key] = alerts
                store.append_one("ALERTS_FOR_STATE", for_state, t, float(a.active_at), key=for_state_key)
                current[for_state_key] = for_state
        self._alert_series[(g.name, i)] = active
        self._stale(g, i, "ALERTS", current, t, store)

    def firing(self, alertname: str) -> list[Alert]:
        """The firing alerts of every rule called `alertname` (what promtool's alert_rule_test compares)."""
        return [a for st in self.states.values() if st.name == alertname
                for a in st.active.values() if a.state is AlertState.FIRING]

    # -- checkpoints -------------------------------------------------------------------------------
    def snapshot(self) -> bytes:
        return orjson.dumps({
            "next": self.next_tick,
            "alerts": {f"{k[0]}\x00{k[1]}": [a.to_json() for a in st.active.values()]
                       for k, st in self.states.items()},
            "previous": [[k[0], k[1], list(v.values())] for k, v in self.previous.items()],
        })

    def restore(self, data: bytes) -> RuleEngine:
        d = orjson.loads(data)
        self.next_tick = {k: float(v) for k, v in d["next"].items()}
        for k, st in self.states.items():
            st.active = {}
            for a in d["alerts"].get(f"{k[0]}\x00{k[1]}", []):
                alert = Alert.from_json(a)
                st.active[alert.fingerprint] = alert
        self.previous = {(g, int(i)): {labels_key(lab): lab for lab in labels} for g, i, labels in d["previous"]}
        return self


_AlertSeries = tuple[dict[str, str], Key, dict[str, str], Key]


def _alert_series(a: Alert) -> _AlertSeries:
    """The `ALERTS` and `ALERTS_FOR_STATE` label sets of an alert in its state, with their keys."""
    alerts = {**a.labels, "__name__": "ALERTS", "alertstate": a.state.value}
    for_state = {**a.labels, "__name__": "ALERTS_FOR_STATE"}
    return alerts, labels_key(alerts), for_state, labels_key(for_state)


def _template_query(q: str, t: float, store: SeriesStore, semantics: Semantics) -> list[QuerySample]:
    """A template's `query`: evaluated at the alert's evaluation time against the same store (so it sees
    what earlier rules of the tick recorded), as Prometheus' rules.EngineQueryFunc."""
    try:
        return [QuerySample(s.labels, s.value) for s in _vector(evaluate(parse(q, semantics), t, store))]
    except CoreError as exc:
        raise TemplateError(f"error executing query {q!r}: {exc}") from None


def _vector(value: object) -> list[VectorSample]:
    if isinstance(value, Scalar):
        return [VectorSample({}, value.value)]
    if isinstance(value, list) and all(isinstance(v, VectorSample) for v in value):
        return value
    raise CoreError("rule result is not an instant vector or a scalar")


