"""Anomaly rule files: Watchkeeper's `anomaly:` extension of Prometheus rule groups.

    anomaly:
      - name: latency
        rules:
          - alert: LatencyAnomaly
            selector: 'http_request_duration_seconds{job="api"}'
            input: aggregates        # or samples
            field: p95               # aggregates only
            detector: ensemble       # the default (core.detectors.DEFAULT_DETECTOR)
            params: {}
            threshold: 0.7           # event's absolute scale: z / (z + 3) >= 0.7 means z >= 7
            for: 0s                  # event scores the first point of an event only
            labels: {severity: high}
            annotations: {summary: "{{ $labels.job }} p95 is unusual (score {{ $value }})"}

Each rule names the series it watches (a PromQL vector selector, parsed with promql-parser), what it
scores (a field of the window aggregates, or the raw samples), a detector from `core.detectors` with
its parameters, and a score threshold in (0, 1]. A series whose point scores at or above the threshold
is active at that point's event time; `for` and `keep_firing_for` then work as in Prometheus rules.
Every mistake is one error naming file, line, group and rule, so nothing fails later on the stream.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import promql_parser as pp
from pydantic import BaseModel, ConfigDict, Field

from watchkeeper.core.detectors import (
    DEFAULT_DETECTOR,
    DETECTORS,
    Detector,
    DetectorParamError,
    coerce_params,
    make_detector,
)
from watchkeeper.core.errors import SourceError
from watchkeeper.core.promql.evaluator import match_op_name
from watchkeeper.core.promql.values import Matcher
from watchkeeper.core.rules.rule_file_checks import (
    duration_at,
    file_spec,
    groups_of_files,
    labels_and_annotations,
    validated_groups,
    where,
)
from watchkeeper.core.yaml_source import YamlDocument, load_yaml
from watchkeeper.schemas.label_names import is_metric_name

InputKind = Literal["aggregates", "samples"]
# What an aggregate-input rule can score: `mean` is sum/count, the quantiles come from the window's sketch.
AGGREGATE_FIELDS = ("mean", "max", "min", "last", "sum", "count", "increase", "p50", "p90", "p95", "p99")


class _RuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    alert: str
    selector: str
    input: InputKind = "aggregates"
    field: str | None = None
    detector: str = DEFAULT_DETECTOR  # the one default, shared with `watchkeeper detect` (core.detectors)
    params: dict[str, str | int | float] = Field(default_factory=dict)
    threshold: float
    for_: str | int | None = Field(default=None, alias="for")
    keep_firing_for: str | int | None = None
    labels: dict[str, str | int | float | bool] = Field(default_factory=dict)
    annotations: dict[str, str | int | float | bool] = Field(default_factory=dict)


class _GroupSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    rules: list[Any] = Field(default_factory=list)


class _FileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    anomaly: list[Any] = Field(default_factory=list)


@dataclass(frozen=True)
class Selector:
    """A PromQL vector selector: the metric name (if given) and label matchers, matched like Prometheus."""

    text: str
    matchers: tuple[Matcher, ...]

    def matches(self, name: str, labels: dict[str, str]) -> bool:
        full = {**labels, "__name__": name}
        return all(m.matches(full) for m in self.matchers)


@dataclass
class AnomalyRule:
    alert: str
    selector: Selector
    input: InputKind
    field: str  # "value" for samples
    detector: str
    params: dict[str, Any]
    threshold: float
    hold: float = 0.0  # `for`
    keep_firing_for: float = 0.0
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    annotations: dict[str, str] = dataclasses.field(default_factory=dict)
    group: str = ""
    path: str = ""
    line: int | None = None

    @property
    def key(self) -> str:
        """Identity of the rule within the loaded files: detector state is kept per (rule, series)."""
        return f"{self.group}/{self.alert}"

    def new_detector(self) -> Detector:
        return make_detector(self.detector, **self.params)


@dataclass
class AnomalyGroup:
    name: str
    rules: list[AnomalyRule]
    path: str = ""


def load_anomaly_files(paths: list[str]) -> list[AnomalyGroup]:
    return groups_of_files(paths, _load, "anomaly")


def load_anomaly_text(text: str, path: str = "<anomaly rules>") -> list[AnomalyGroup]:
    return _load(load_yaml(text, path))


def parse_selector(text: str) -> Selector:
    """``name{label="v", other=~"re"}`` -> `Selector`; ValueError saying what is wrong otherwise."""
    try:
        node = pp.parse(text)
    except ValueError as exc:
        raise ValueError(f"invalid selector {text!r}: {exc}") from None
    if not isinstance(node, pp.VectorSelector):
        raise ValueError(f"selector {text!r} must be a plain vector selector such as "
                         f"'metric{{label=\"value\"}}', not a {type(node).__name__}")
    if node.offset is not None or node.at is not None:
        raise ValueError(f"selector {text!r}: offset and @ are not supported (anomalies are scored as points arrive)")
    if node.matchers.or_matchers:
        raise ValueError(f"selector {text!r}: 'or' inside label matchers is not supported")
    matchers = [Matcher(m.name, match_op_name(m.op), m.value) for m in node.matchers.matchers]
    if node.name:
        matchers.insert(0, Matcher("__name__", "=", node.name))
    return Selector(text, tuple(matchers))


def _load(doc: YamlDocument) -> list[AnomalyGroup]:
    spec = file_spec(doc, _FileSpec, "expected an anomaly rule file: a mapping with `anomaly:`")
    if spec is None:
        return []
    out: list[AnomalyGroup] = []
    g: _GroupSpec
    for gloc, g in validated_groups(doc, "anomaly", spec.anomaly, _GroupSpec):
        rules = [_rule(doc, (*gloc, "rules", ri), g.name, raw) for ri, raw in enumerate(g.rules)]
        alerts = [r.alert for r in rules]
        for ri, r in enumerate(rules):
            if alerts.index(r.alert) != ri:
                raise doc.error((*gloc, "rules", ri, "alert"),
                                f"{where(g.name, r.alert)}: this alert name is used twice in this group")
        out.append(AnomalyGroup(g.name, rules, doc.path))
    return out


def _rule(doc: YamlDocument, loc: tuple[str | int, ...], group: str, raw: Any) -> AnomalyRule:
    if not isinstance(raw, dict):
        raise doc.error(loc, f"{where(group, None)}: a rule must be a mapping with alert, selector and threshold")
    name = raw.get("alert") if isinstance(raw.get("alert"), str) else None
    place = where(group, name)
    try:
        spec: _RuleSpec = doc.validate(_RuleSpec, raw, base=loc)
    except SourceError as exc:
        raise SourceError(exc.path, exc.line, exc.field, f"{place}: {exc.message}") from None
    if not is_metric_name(spec.alert):
        raise doc.error((*loc, "alert"), f"{place}: {spec.alert!r} is not a valid alert name")
    try:
        selector = parse_selector(spec.selector)
    except ValueError as exc:
        raise doc.error((*loc, "selector"), f"{place}: {exc}") from None
    if spec.input == "samples":
        if spec.field not in (None, "value"):
            raise doc.error((*loc, "field"), f"{place}: a rule on raw samples scores their value; "
                                             "remove `field` or use `input: aggregates`")
        score_field = "value"
    else:
        score_field = spec.field or "mean"
        if score_field not in AGGREGATE_FIELDS:
            raise doc.error((*loc, "field"), f"{place}: unknown field {score_field!r}; "
                                             f"choose one of: {', '.join(AGGREGATE_FIELDS)}")
    if spec.detector not in DETECTORS:
        raise doc.error((*loc, "detector"), f"{place}: unknown detector {spec.detector!r}; "
                                            f"choose one of: {', '.join(DETECTORS)}")
    try:
        params = coerce_params(spec.detector, {k: str(v) for k, v in spec.params.items()})
        make_detector(spec.detector, **params)
    except DetectorParamError as exc:
        raise doc.error((*loc, "params"), f"{place}: {exc}") from None
    if not 0.0 < spec.threshold <= 1.0:
        raise doc.error((*loc, "threshold"), f"{place}: threshold {spec.threshold:g} is not a score; "
                                             "use a value in (0, 1], e.g. 0.99 for 'rarer than 1 in 100'")
    hold = duration_at(doc, (*loc, "for"), place, spec.for_)
    keep = duration_at(doc, (*loc, "keep_firing_for"), place, spec.keep_firing_for)
    labels, annotations = labels_and_annotations(doc, loc, place, spec.labels, spec.annotations,
                                                 lambda k: k.startswith("__"))
    return AnomalyRule(spec.alert, selector, spec.input, score_field, spec.detector, params, spec.threshold,
                       hold, keep, labels, annotations, group, doc.path, doc.line_of(loc))
