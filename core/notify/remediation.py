"""Verified remediation: a command hook that declares `verify:` runs at most once per alert per `cooldown`,
then its work is checked (probe the service again, every `interval`, for up to `within`): healthy means
"RECOVERED: service is back online"; still unhealthy at the end, or a command that failed, means
"RECOVERY FAILED: manual intervention required", escalated with the command's exit status and output.
The runbooks' restart-wait-probe, with the loop bounded so a flapping alert cannot restart a service
over and over. Pure: time comes in as `now`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import promql_parser as pp

from watchkeeper.core.notify.receiver_configs import ReceiverConfig
from watchkeeper.core.promql.evaluator import evaluate, parse
from watchkeeper.core.promql.series_store import SeriesStore
from watchkeeper.core.promql.values import Scalar
from watchkeeper.core.yaml_source import YamlDocument
from watchkeeper.schemas.alerts import AlertEvent

RECOVERED = "RECOVERED: service is back online"
FAILED = "RECOVERY FAILED: manual intervention required"


def due_for_run(last_runs: Mapping[str, float | None], cooldown: float, now: float) -> list[str]:
    """The fingerprints whose last remediation run is at least `cooldown` ago (or that never had one)."""
    return sorted(fp for fp, last in last_runs.items() if last is None or now - last >= cooldown)


@dataclass
class Verification:
    """Probing after the command: healthy -> recovered; `within` passed without health -> failed."""

    started: float
    within: float
    interval: float
    probes: int = 0
    outcome: str = ""  # "" while verifying, then "recovered" or "failed"

    def next_probe_at(self) -> float:
        return self.started + self.probes * self.interval

    def observe(self, healthy: bool, now: float) -> str:
        """Take one probe's result; the outcome once decided ("recovered" | "failed"), else ""."""
        if self.outcome:
            return self.outcome
        self.probes += 1
        if healthy:
            self.outcome = "recovered"
        elif now >= self.started + self.within or math.isclose(now, self.started + self.within):
            self.outcome = "failed"
        return self.outcome


def outcome_alerts(alerts: list[AlertEvent], outcome: str, detail: str) -> list[AlertEvent]:
    """The alerts as the outcome notification carries them: same labels and fingerprints, with the outcome
    in a `remediation` annotation and in front of the summary, the detail in `remediation_detail`."""
    head = RECOVERED if outcome == "recovered" else FAILED
    out = []
    for a in alerts:
        summary = a.annotations.get("summary", a.labels.get("alertname", a.rule))
        ann = {**a.annotations, "remediation": head, "summary": f"{head} ({summary})"}
        if detail:
            ann["remediation_detail"] = detail
        out.append(a.model_copy(update={"annotations": ann}))
    return out


def check_report_to(doc: YamlDocument, receivers: list[ReceiverConfig]) -> None:
    """Every `verify.report_to` names a defined receiver (file, line and field otherwise)."""
    names = {r.name for r in receivers}
    for i, r in enumerate(receivers):
        for j, c in enumerate(r.command_configs):
            for k, target in enumerate(c.verify.report_to if c.verify else []):
                if target not in names:
                    raise doc.error(("receivers", i, "command_configs", j, "verify", "report_to", k),
                                    f"receiver {target!r} is not defined under receivers")


def selector_names(expr: str) -> list[str] | None:
    """The metric names a PromQL expression reads, to load only those; None if a selector has no name."""
    names: set[str] = set()
    nameless = False

    def walk(node: Any) -> None:
        nonlocal nameless
        if isinstance(node, pp.VectorSelector):
            if node.name:
                names.add(node.name)
            else:
                nameless = True
            return
        for attr in ("lhs", "rhs", "expr", "param", "vector_selector"):
            child = getattr(node, attr, None)
            if child is not None and not isinstance(child, str | int | float):
                walk(child)
        for arg in getattr(node, "args", None) or []:
            walk(arg)

    walk(parse(expr).node)
    return None if nameless else sorted(names)


def promql_healthy(expr: str, store: SeriesStore, at: float) -> tuple[bool, str]:
    """Healthy when the expression returns a result at `at` (a non-zero scalar, or any sample), over a store
    holding only the samples since the command ran, so a reading from before the remediation never counts."""
    value = evaluate(expr, at, store)
    if isinstance(value, Scalar):
        return value.value != 0, f"{expr} = {value.value:g}"
    return len(value) > 0, f"{expr} returned {len(value)} series"
