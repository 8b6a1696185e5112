"""Sloth's `prometheus/v1` SLO spec, read unchanged, with errors that name file, line and field.

Field for field the spec of `pkg/prometheus/api/v1/v1.go` in slok/sloth. Unknown keys are errors (a typo in
`objective` must not silently drop an SLO); Sloth's SLI plugins are recognised and refused with a clear message
because their code runs inside Sloth.
"""

from __future__ import annotations

import re
from typing import Any

import promql_parser
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from watchkeeper.core.yaml_source import YamlDocument, load_yaml, load_yaml_file
from watchkeeper.schemas.label_names import is_label_name

SPEC_VERSION = "prometheus/v1"
WINDOW_TEMPLATE = re.compile(r"\{\{\s*\.window\s*\}\}")
_ANY_TEMPLATE = re.compile(r"\{\{.*?\}\}", re.S)
# Prometheus label values may hold anything, but Sloth's ids become label values and rule group names.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SLIEvents(_Strict):
    error_query: str
    total_query: str


class SLIRaw(_Strict):
    # Sloth's early specs (and its raw-home-wifi example) spell it errorRatioQuery.
    error_ratio_query: str = Field(validation_alias=AliasChoices("error_ratio_query", "errorRatioQuery"))


class SLIPlugin(_Strict):
    id: str
    options: dict[str, Any] = Field(default_factory=dict)


class SLI(_Strict):
    events: SLIEvents | None = None
    raw: SLIRaw | None = None
    plugin: SLIPlugin | None = None


class AlertSpec(_Strict):
    disable: bool = False
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Alerting(_Strict):
    name: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    page_alert: AlertSpec = AlertSpec()
    ticket_alert: AlertSpec = AlertSpec()


class SLOSpec(_Strict):
    name: str
    objective: float
    description: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    sli: SLI
    alerting: Alerting = Alerting()


class SlothSpec(_Strict):
    """The whole file: one service and its SLOs."""

    version: str
    service: str
    labels: dict[str, str] = Field(default_factory=dict)
    slos: list[SLOSpec] = Field(default_factory=list)


def load_slo_spec_file(path: str) -> SlothSpec:
    """Read and check a Sloth spec file; every mistake is a `SourceError` naming file, line and field."""
    return _check(load_yaml_file(path))


def load_slo_spec(text: str, path: str = "<spec>") -> SlothSpec:
    return _check(load_yaml(text, path))


def render_window(query: str, window: str) -> str:
    """Sloth renders the SLI queries as Go templates with one variable, `{{.window}}`."""
    return WINDOW_TEMPLATE.sub(window, query)


def _check(doc: YamlDocument) -> SlothSpec:
    data = doc.data
    if not isinstance(data, dict):
        raise doc.error((), "a Sloth spec is a mapping with version, service and slos")
    if "slo_plugins" in data:
        raise doc.error(("slo_plugins",), "Sloth SLO plugins are not supported; remove slo_plugins")
    if data.get("version") != SPEC_VERSION:
        raise doc.error(("version",), f"must be {SPEC_VERSION!r} (got {data.get('version')!r})")
    spec: SlothSpec = doc.validate(SlothSpec, data)
    if not spec.service or not _NAME.match(spec.service):
        raise doc.error(("service",), "service is required: letters, digits, '-', '_' or '.'")
    if not spec.slos:
        raise doc.error(("slos",), "at least one SLO is required")
    for key in spec.labels:
        _label_name(doc, ("labels", key), key)
    seen: set[str] = set()
    for i, slo in enumerate(spec.slos):
        base: tuple[str | int, ...] = ("slos", i)
        if not _NAME.match(slo.name):
            raise doc.error((*base, "name"), "SLO name is required: letters, digits, '-', '_' or '.'")
        if slo.name in seen:
            raise doc.error((*base, "name"), f"duplicate SLO name {slo.name!r}")
        seen.add(slo.name)
        if not 0 < slo.objective <= 100:
            raise doc.error((*base, "objective"), "objective is a percentage in (0, 100], e.g. 99.9")
        for key in slo.labels:
            _label_name(doc, (*base, "labels", key), key)
        _check_sli(doc, base, slo.sli)
        alerting = slo.alerting
        if not alerting.name and not (alerting.page_alert.disable and alerting.ticket_alert.disable):
            raise doc.error((*base, "alerting", "name"), "alerting.name is required unless both alerts are disabled")
    return spec


def _label_name(doc: YamlDocument, loc: tuple[str | int, ...], name: str) -> None:
    if not is_label_name(name):
        raise doc.error(loc, f"{name!r} is not a valid Prometheus label name")


def _check_sli(doc: YamlDocument, base: tuple[str | int, ...], sli: SLI) -> None:
    loc = (*base, "sli")
    if sli.plugin is not None:
        raise doc.error((*loc, "plugin"), "Sloth SLI plugins are not supported; use sli.events or sli.raw")
    kinds = [k for k in ("events", "raw") if getattr(sli, k) is not None]
    if len(kinds) != 1:
        raise doc.error(loc, "exactly one SLI type is required: sli.events or sli.raw")
    if sli.events is not None:
        queries = {"error_query": sli.events.error_query, "total_query": sli.events.total_query}
        qloc = (*loc, "events")
    else:
        assert sli.raw is not None
        queries = {"error_ratio_query": sli.raw.error_ratio_query}
        qloc = (*loc, "raw")
    for field, query in queries.items():
        if sli.events is not None and not WINDOW_TEMPLATE.search(query):
            raise doc.error((*qloc, field), "the query must use the {{.window}} template variable")
        leftover = _ANY_TEMPLATE.search(WINDOW_TEMPLATE.sub("", query))
        if leftover:
            raise doc.error((*qloc, field), f"unknown template {leftover.group(0)!r}: only {{{{.window}}}} is defined")
        try:
            promql_parser.parse(render_window(query, "5m"))
        except Exception as exc:
            raise doc.error((*qloc, field), f"invalid PromQL: {exc}") from None


__all__ = [
    "SLI",
    "SPEC_VERSION",
    "AlertSpec",
    "Alerting",
    "SLIEvents",
    "SLIRaw",
    "SLOSpec",
    "SlothSpec",
    "load_slo_spec",
    "load_slo_spec_file",
    "render_window",
]
