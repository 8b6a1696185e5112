"""Sloth's rule generation, function for function: an SLO spec becomes Prometheus rule groups.

Per SLO three groups, as `sloth generate` writes them: the SLI error-ratio recordings for every alert window
plus the SLO period (the period one averaged from the 5 m recording, Sloth's "optimized" rule), the metadata
recordings (`slo:objective:ratio`, `slo:error_budget:ratio`, `slo:time_period:days`, burn rates, budget
remaining, `sloth_slo_info`) and the multi-window, multi-burn-rate page and ticket alerts. Numbers and
durations are printed the way Go prints them, so the output equals Sloth's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from watchkeeper.core.slo.go_format import go_float, go_float_fixed, prom_duration
from watchkeeper.core.slo.spec import AlertSpec, SLOSpec, SlothSpec, render_window
from watchkeeper.core.slo.windows import DAY, AlertWindows, BurnWindow, google_windows

SLI_ERROR_METRIC = "slo:sli_error:ratio_rate{window}"
ID_LABELS = ("sloth_id", "sloth_service", "sloth_slo")
WINDOW_LABEL = "sloth_window"
DEFAULT_MODE = "cli-gen-prom"


@dataclass(frozen=True)
class GeneratorInfo:
    """What `sloth_slo_info` says about the generator (Sloth writes its version and mode there)."""

    version: str = "watchkeeper"
    mode: str = DEFAULT_MODE
    spec: str = "prometheus/v1"


@dataclass(frozen=True)
class SLO:
    """One SLO ready for generation: Sloth's internal model (id, merged labels, period)."""

    spec: SLOSpec
    service: str
    labels: dict[str, str]
    period: float = 30 * DAY
    windows: AlertWindows = field(default_factory=lambda: google_windows(30 * DAY))

    @property
    def id(self) -> str:
        return f"{self.service}-{self.spec.name}"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def objective(self) -> float:
        return self.spec.objective

    def id_labels(self) -> dict[str, str]:
        return {"sloth_id": self.id, "sloth_service": self.service, "sloth_slo": self.name}

    def id_filter(self) -> str:
        """Sloth's `labelsToPromFilter`: the id labels as a sorted selector."""
        labels = self.id_labels()
        return "{" + ", ".join(f'{k}="{labels[k]}"' for k in sorted(labels)) + "}"


def slos_of(spec: SlothSpec, period: float = 30 * DAY, extra_labels: dict[str, str] | None = None) -> list[SLO]:
    """Sloth's `mapSpecToModel` plus `--extra-labels`: SLO labels are service labels, SLO labels, extras."""
    windows = google_windows(period)
    return [
        SLO(
            spec=s,
            service=spec.service,
            labels={**spec.labels, **s.labels, **(extra_labels or {})},
            period=period,
            windows=windows,
        )
        for s in spec.slos
    ]


def sli_metric(window: float) -> str:
    return SLI_ERROR_METRIC.format(window=prom_duration(window))


def sli_recording_rules(slo: SLO) -> list[dict[str, Any]]:
    rules = [_sli_rule(slo, w) for w in slo.windows.all_windows()]
    rules.append(_optimized_period_rule(slo))
    return rules


def _sli_rule(slo: SLO, window: float) -> dict[str, Any]:
    win = prom_duration(window)
    sli = slo.spec.sli
    if sli.events is not None:
        expr = f"({render_window(sli.events.error_query, win)})\n/\n({render_window(sli.events.total_query, win)})\n"
    else:
        assert sli.raw is not None
        expr = f"({render_window(sli.raw.error_ratio_query, win)})"
    labels = {**slo.id_labels(), WINDOW_LABEL: win, **slo.labels}
    return {"record": sli_metric(window), "expr": expr, "labels": _sorted(labels)}


def _optimized_period_rule(slo: SLO) -> dict[str, Any]:
    """The period ratio as the mean of the short-window ratios (sum over time / count over time)."""
    metric = sli_metric(slo.windows.page_quick.short)
    flt, win = slo.id_filter(), prom_duration(slo.period)
    expr = (
        f"sum_over_time({metric}{flt}[{win}])\n/ ignoring ({WINDOW_LABEL})\ncount_over_time({metric}{flt}[{win}])\n"
    )
    return {"record": sli_metric(slo.period), "expr": expr, "labels": {WINDOW_LABEL: win}}


def metadata_recording_rules(slo: SLO, info: GeneratorInfo) -> list[dict[str, Any]]:
    labels = _sorted({**slo.id_labels(), **slo.labels})
    ratio = slo.objective / 100
    flt = slo.id_filter()

    def burn(metric: str) -> str:
        return f"{metric}{flt}\n/ on(sloth_id, sloth_slo, sloth_service) group_left\nslo:error_budget:ratio{flt}\n"

    info_labels = _sorted(
        {
            **labels,
            "sloth_version": info.version,
            "sloth_mode": info.mode,
            "sloth_spec": info.spec,
            "sloth_objective": go_float_fixed(slo.objective),
        }
    )
    return [
        {"record": "slo:objective:ratio", "expr": f"vector({go_float(ratio)})", "labels": labels},
        {"record": "slo:error_budget:ratio", "expr": f"vector(1-{go_float(ratio)})", "labels": labels},
        {"record": "slo:time_period:days", "expr": f"vector({go_float(slo.period / 3600 / 24)})", "labels": labels},
        {
            "record": "slo:current_burn_rate:ratio",
            "expr": burn(sli_metric(slo.windows.page_quick.short)),
            "labels": labels,
        },
        {"record": "slo:period_burn_rate:ratio", "expr": burn(sli_metric(slo.period)), "labels": labels},
        {
            "record": "slo:period_error_budget_remaining:ratio",
            "expr": f"1 - slo:period_burn_rate:ratio{flt}",
            "labels": labels,
        },
        {"record": "sloth_slo_info", "expr": "vector(1)", "labels": info_labels},
    ]


def alert_rules(slo: SLO) -> list[dict[str, Any]]:
    alerting = slo.spec.alerting
    w = slo.windows
    rules = []
    for severity, meta, quick, slow in (
        ("page", alerting.page_alert, w.page_quick, w.page_slow),
        ("ticket", alerting.ticket_alert, w.ticket_quick, w.ticket_slow),
    ):
        if not meta.disable:
            rules.append(_mwmb_alert(slo, severity, meta, quick, slow))
    return rules


def _mwmb_alert(slo: SLO, severity: str, meta: AlertSpec, quick: BurnWindow, slow: BurnWindow) -> dict[str, Any]:
    alerting = slo.spec.alerting
    flt = slo.id_filter()
    budget = go_float((100 - slo.objective) / 100)

    def cond(window: float, bw: BurnWindow) -> str:
        return f"({sli_metric(window)}{flt} > ({go_float(bw.factor(slo.period))} * {budget}))"

    expr = (
        "(\n"
        f"    {cond(quick.short, quick)}\n    and ignoring ({WINDOW_LABEL})\n    {cond(quick.long, quick)}\n"
        f")\nor ignoring ({WINDOW_LABEL})\n(\n"
        f"    {cond(slow.short, slow)}\n    and ignoring ({WINDOW_LABEL})\n    {cond(slow.long, slow)}\n"
        ")\n"
    )
    annotations = {
        "title": f"({severity}) {{{{$labels.sloth_service}}}} {{{{$labels.sloth_slo}}}} SLO error budget burn rate "
        "is too fast.",
        "summary": "{{$labels.sloth_service}} {{$labels.sloth_slo}} SLO error budget burn rate is over expected.",
        **alerting.annotations,
        **meta.annotations,
    }
    labels = {"sloth_severity": severity, **alerting.labels, **meta.labels}
    return {"alert": alerting.name, "expr": expr, "labels": _sorted(labels), "annotations": _sorted(annotations)}


def generate_rule_groups(
    spec: SlothSpec,
    info: GeneratorInfo | None = None,
    period: float = 30 * DAY,
    extra_labels: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """All rule groups for a spec, in Sloth's order: per SLO its SLI, metadata and alert groups."""
    info = info or GeneratorInfo()
    groups: list[dict[str, Any]] = []
    for slo in slos_of(spec, period, extra_labels):
        groups.append({"name": f"sloth-slo-sli-recordings-{slo.id}", "rules": sli_recording_rules(slo)})
        groups.append({"name": f"sloth-slo-meta-recordings-{slo.id}", "rules": metadata_recording_rules(slo, info)})
        if alerts := alert_rules(slo):
            groups.append({"name": f"sloth-slo-alerts-{slo.id}", "rules": alerts})
    return groups


class _LiteralDumper(yaml.SafeDumper):
    """Multi-line expressions as `|` blocks, like Sloth's output, so the file reads well."""


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_LiteralDumper.add_representer(str, _str_presenter)


def rules_yaml(groups: list[dict[str, Any]], source: str = "") -> str:
    """The Prometheus rule file text, with a header saying it is generated and from what."""
    header = "# Code generated by watchkeeper slo generate (Sloth prometheus/v1 compatible)"
    header += f" from {source}.\n" if source else ".\n"
    header += "# DO NOT EDIT.\n\n"
    body = yaml.dump({"groups": groups}, Dumper=_LiteralDumper, sort_keys=False, width=1000, allow_unicode=True)
    return header + body


def _sorted(d: dict[str, str]) -> dict[str, str]:
    return {k: d[k] for k in sorted(d)}
