"""Prometheus rule files, loaded unchanged: `groups: [{name, interval, rules: [{alert|record, expr, for,
keep_firing_for, labels, annotations}]}]`. Every mistake is one error naming the file, line, group and
rule, and saying what to do; `expr` is parsed with promql-parser and checked against the supported
subset, templates are checked too, so nothing fails later on the stream."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from watchkeeper.core.errors import CoreError, SourceError
from watchkeeper.core.promql.evaluator import DEFAULT_SEMANTICS, ParsedExpr, Semantics, parse
from watchkeeper.core.promql.series_notation import SeriesNotationError, parse_duration
from watchkeeper.core.rules.templates import TemplateError, check
from watchkeeper.core.yaml_source import Path as DocPath
from watchkeeper.core.yaml_source import YamlDocument, load_yaml, load_yaml_file
from watchkeeper.schemas.alerts import AlertSource
from watchkeeper.schemas.label_names import is_label_name

DEFAULT_INTERVAL = 60.0  # Prometheus' global evaluation_interval default
_METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


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
    groups: list[RuleGroup] = []
    seen: dict[str, str] = {}
    for p in paths:
        for g in _load(load_yaml_file(p), default_interval, semantics):
            if g.name in seen:
                raise SourceError(p, None, "groups", f"group name {g.name!r} is already used in {seen[g.name]}")
            seen[g.name] = p
            groups.append(g)
    return groups


def load_rules_text(text: str, path: str = "<rules>", default_interval: float = DEFAULT_INTERVAL,
                    semantics: Semantics = DEFAULT_SEMANTICS) -> list[RuleGroup]:
    return _load(load_yaml(text, path), default_interval, semantics)


def _load(doc: YamlDocument, default_interval: float, semantics: Semantics) -> list[RuleGroup]:
    if doc.data is None:
        return []
    if not isinstance(doc.data, dict):
        raise doc.error((), "expected a rule file: a mapping with `groups:`")
    spec: _FileSpec = doc.validate(_FileSpec)
    out: list[RuleGroup] = []
    g: _GroupSpec
    for gloc, g in validated_groups(doc, "groups", spec.groups or [], _GroupSpec):
        if g.limit:
            raise doc.error((*gloc, "limit"), f"group {g.name!r}: `limit` is not supported")
        interval = default_interval
        if g.interval is not None:
            interval = _duration(doc, (*gloc, "interval"), g.name, None, g.interval)
            if interval <= 0:
                raise doc.error((*gloc, "interval"), f"group {g.name!r}: interval must be greater than 0")
        rules = [_rule(doc, (*gloc, "rules", ri), g.name, raw, semantics) for ri, raw in enumerate(g.rules or [])]
        out.append(RuleGroup(g.name, interval, rules, doc.path))
    return out


def validated_groups(doc: YamlDocument, key: str, raw: list[Any],
                     spec: type[BaseModel]) -> Iterator[tuple[DocPath, Any]]:
    """Each group of `doc[key]` validated as `spec`, with its location; a group that is not a mapping, has
    no name or repeats one is an error at its line (rule files and anomaly rule files alike)."""
    names: set[str] = set()
    for gi, graw in enumerate(raw):
        gloc: DocPath = (key, gi)
        if not isinstance(graw, dict):
            raise doc.error(gloc, "a group must be a mapping with name and rules")
        g = doc.validate(spec, graw, base=gloc)
        if not g.name.strip():
            raise doc.error((*gloc, "name"), "a group needs a name")
        if g.name in names:
            raise doc.error((*gloc, "name"), f"group name {g.name!r} is used twice in this file")
        names.add(g.name)
        yield gloc, g


def _where(group: str, rule: str | None) -> str:
    return f"group {group!r}" + (f", rule {rule!r}" if rule else "")


def _duration(doc: YamlDocument, loc: tuple[str | int, ...], group: str, rule: str | None, text: str) -> float:
    try:
        return parse_duration(text)
    except SeriesNotationError as exc:
        raise doc.error(loc, f"{_where(group, rule)}: {exc}") from None


def _rule(doc: YamlDocument, loc: tuple[str | int, ...], group: str, raw: Any, semantics: Semantics) -> Rule:
    if not isinstance(raw, dict):
        raise doc.error(loc, f"{_where(group, None)}: a rule must be a mapping with alert or record and expr")
    name = raw.get("alert") or raw.get("record")
    try:
        spec = _RuleSpec.model_validate(raw)
    except Exception:
        try:
            doc.validate(_RuleSpec, raw, base=loc)
        except SourceError as exc:
            raise SourceError(exc.path, exc.line, exc.field, f"{_where(group, name)}: {exc.message}") from None
        raise
    if bool(spec.alert) == bool(spec.record):
        raise doc.error(loc, f"{_where(group, name)}: a rule needs exactly one of `alert` or `record`")
    if spec.record is not None and not _METRIC.match(spec.record):
        raise doc.error((*loc, "record"), f"{_where(group, name)}: {spec.record!r} is not a valid metric name")
    if spec.record is not None:
        for key in ("for_", "keep_firing_for"):
            if getattr(spec, key) is not None:
                what = key.rstrip("_")
                raise doc.error((*loc, what), f"{_where(group, name)}: a recording rule has no `{what}`")
        if spec.annotations:
            raise doc.error((*loc, "annotations"), f"{_where(group, name)}: a recording rule has no annotations")
    text = str(spec.expr)
    if not text.strip():
        raise doc.error((*loc, "expr"), f"{_where(group, name)}: `expr` is empty")
    try:
        expr = parse(text, semantics)
    except CoreError as exc:
        raise doc.error((*loc, "expr"), f"{_where(group, name)}: {exc}") from None
    labels = {k: _str(v) for k, v in spec.labels.items()}
    annotations = {k: _str(v) for k, v in spec.annotations.items()}
    for k in labels:
        if not is_label_name(k) or k == "__name__":
            raise doc.error((*loc, "labels", k), f"{_where(group, name)}: {k!r} is not a valid label name")
    for kind, mapping in (("labels", labels), ("annotations", annotations)):
        for k, v in mapping.items():
            try:
                check(v)
            except TemplateError as exc:
                raise doc.error((*loc, kind, k), f"{_where(group, name)}: template: {exc}") from None
    hold = _duration(doc, (*loc, "for"), group, name, spec.for_) if spec.for_ is not None else 0.0
    keep = (_duration(doc, (*loc, "keep_firing_for"), group, name, spec.keep_firing_for)
            if spec.keep_firing_for is not None else 0.0)
    return Rule(expr, spec.alert, spec.record, hold, keep, labels, annotations, doc.line_of(loc))


def _str(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
