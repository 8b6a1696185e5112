"""Prometheus rule files, loaded unchanged: `groups: [{name, interval, rules: [{alert|record, expr, for,
keep_firing_for, labels, annotations}]}]`. Every mistake is one error naming the file, line, group and
rule, and saying what to do; `expr` is parsed with promql-parser and checked against the supported
subset, templates are checked too, so nothing fails later on the stream."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from watchkeeper.core.errors import CoreError, SourceError
from watchkeeper.core.promql.evaluator import DEFAULT_SEMANTICS, ParsedExpr, Semantics, parse
from watchkeeper.core.rules.rule_file_checks import (
    duration_at,
    file_spec,
    groups_of_files,
    labels_and_annotations,
    validated_groups,
    where,
)
from watchkeeper.core.yaml_source import YamlDocument, load_yaml
from watchkeeper.schemas.alerts import AlertSource
from watchkeeper.schemas.label_names import is_metric_name

DEFAULT_INTERVAL = 60.0  # Prometheus' global evaluation_interval default


class _RuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    alert: str | None = None
    record: str | None = None
    expr: str | int | float
    for_: str | None = Field(default=None, alias="for")
    keep_firing_for: str | None = None
    labels: dict[str, str | int | float | bool] = Field(default_factory=dict)
    annotations: dict[str, str | int | float | bool] = Field(default_factory=dict)


class _GroupSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    interval: str | None = None
    limit: int = 0
    rules: list[dict[str, Any]] | None = None  # `rules:` left empty is an empty group, as promtool reads it


class _FileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    groups: list[dict[str, Any]] | None = None


@dataclass
class Rule:
    expr: ParsedExpr
    alert: str | None = None
    record: str | None = None
    hold: float = 0.0  # `for`
    keep_firing_for: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    line: int | None = None

    @property
    def name(self) -> str:
        return self.alert or self.record or ""


@dataclass
class RuleGroup:
    name: str
    interval: float
    rules: list[Rule]
    path: str = ""
    source: AlertSource = "rule"  # what its alerts say they come from ("slo" for generated SLO groups)


def load_rule_files(paths: list[str], default_interval: float = DEFAULT_INTERVAL,
                    semantics: Semantics = DEFAULT_SEMANTICS) -> list[RuleGroup]:
    """Every group of the files, expressions parsed for `semantics` (Prometheus 3's or 2's)."""
    return groups_of_files(paths, lambda doc: _load(doc, default_interval, semantics), "groups")


def load_rules_text(text: str, path: str = "<rules>", default_interval: float = DEFAULT_INTERVAL,
                    semantics: Semantics = DEFAULT_SEMANTICS) -> list[RuleGroup]:
    return _load(load_yaml(text, path), default_interval, semantics)


def _load(doc: YamlDocument, default_interval: float, semantics: Semantics) -> list[RuleGroup]:
    spec = file_spec(doc, _FileSpec, "expected a rule file: a mapping with `groups:`")
    if spec is None:
        return []
    out: list[RuleGroup] = []
    g: _GroupSpec
    for gloc, g in validated_groups(doc, "groups", spec.groups or [], _GroupSpec):
        if g.limit:
            raise doc.error((*gloc, "limit"), f"group {g.name!r}: `limit` is not supported")
        interval = default_interval
        if g.interval is not None:
            interval = duration_at(doc, (*gloc, "interval"), where(g.name, None), g.interval)
            if interval <= 0:
                raise doc.error((*gloc, "interval"), f"group {g.name!r}: interval must be greater than 0")
        rules = [_rule(doc, (*gloc, "rules", ri), g.name, raw, semantics) for ri, raw in enumerate(g.rules or [])]
        out.append(RuleGroup(g.name, interval, rules, doc.path))
    return out


def _rule(doc: YamlDocument, loc: tuple[str | int, ...], group: str, raw: Any, semantics: Semantics) -> Rule:
    if not isinstance(raw, dict):
        raise doc.error(loc, f"{where(group, None)}: a rule must be a mapping with alert or record and expr")
    name = raw.get("alert") or raw.get("record")
    place = where(group, name)
    try:
        spec = _RuleSpec.model_validate(raw)
    except Exception:
        try:
            doc.validate(_RuleSpec, raw, base=loc)
        except SourceError as exc:
            raise SourceError(exc.path, exc.line, exc.field, f"{place}: {exc.message}") from None
        raise
    if bool(spec.alert) == bool(spec.record):
        raise doc.error(loc, f"{place}: a rule needs exactly one of `alert` or `record`")
    if spec.record is not None and not is_metric_name(spec.record):
        raise doc.error((*loc, "record"), f"{place}: {spec.record!r} is not a valid metric name")
    if spec.record is not None:
        for key in ("for_", "keep_firing_for"):
            if getattr(spec, key) is not None:
                what = key.rstrip("_")
                raise doc.error((*loc, what), f"{place}: a recording rule has no `{what}`")
        if spec.annotations:
            raise doc.error((*loc, "annotations"), f"{place}: a recording rule has no annotations")
    text = str(spec.expr)
    if not text.strip():
        raise doc.error((*loc, "expr"), f"{place}: `expr` is empty")
    try:
        expr = parse(text, semantics)
    except CoreError as exc:
        raise doc.error((*loc, "expr"), f"{place}: {exc}") from None
    labels, annotations = labels_and_annotations(doc, loc, place, spec.labels, spec.annotations,
                                                 lambda k: k == "__name__")
    hold = duration_at(doc, (*loc, "for"), place, spec.for_)
    keep = duration_at(doc, (*loc, "keep_firing_for"), place, spec.keep_firing_for)
    return Rule(expr, spec.alert, spec.record, hold, keep, labels, annotations, doc.line_of(loc))
