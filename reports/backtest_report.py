"""`watchkeeper rules backtest`: rule files replayed over the samples stored in ClickHouse, through the
worker's own rules step (`agents.rules_replay`), as a terminal listing or a Markdown/HTML report.

The figures (alerts, per-rule summary, difference from the live `alerts` table) come from
`core.rules.backtest`; this module reads, replays, and lays them out.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

from watchkeeper.agents.anomaly_replay import AnomalyReplay
from watchkeeper.agents.rules_replay import Probe, RulesReplay
from watchkeeper.agents.rules_wiring import LoadedRules
from watchkeeper.core.anomaly_rules import AnomalyRule
from watchkeeper.core.rules.backtest import (
    DEFAULT_FLAP_WINDOW,
    AlertSpan,
    Comparison,
    RuleSummary,
    Threshold,
    alert_spans,
    compare,
    summarize,
    threshold_of,
)
from watchkeeper.core.rules.eval_failures import KEEP_PER_RULE
from watchkeeper.reports.backtest_source import (
    aggregate_slices,
    live_alerts,
    rows_of,
    sample_count,
    sample_slices,
    slice_seconds,
    stored_series,
)
from watchkeeper.reports.charts import spans_chart
from watchkeeper.reports.document import Chart, Document, Section, Table, duration
from watchkeeper.reports.series_source import format_labels
from watchkeeper.schemas.alerts import AlertEvent

CHART_POINTS = 400  # points per charted series over the range
CHART_SERIES = 6  # series per chart: those that alerted first


@dataclass
class RuleInfo:
    name: str
    group: str
    kind: str  # alert | record | anomaly (an `anomaly:` rule: alerts, but no PromQL expression to chart)
    expr: str
    threshold: Threshold | None
    interval: float


@dataclass
class BacktestResult:
    start: float
    end: float
    origin: float  # first tick at or after this (the warm-up start, or the first sample)
    rules: list[RuleInfo]
    events: list[AlertEvent]  # transitions with event time in [start, end]
    spans: list[AlertSpan]  # alerts overlapping [start, end]
    summaries: list[RuleSummary]
    samples: int
    series: int
    elapsed: float  # seconds of wall time replaying
    errors: list[str]
    comparison: Comparison | None = None
    live_summaries: list[RuleSummary] = field(default_factory=list)
    probes: dict[str, Probe] = field(default_factory=dict)

    @property
    def speed(self) -> float:
        """Event time replayed per second of wall time (from the origin, warm-up included)."""
        return (self.end - self.origin) / self.elapsed if self.elapsed > 0 else math.inf


def rule_infos(loaded: LoadedRules) -> list[RuleInfo]:
    out = []
    for g in loaded.groups:
        for r in g.rules:
            text = str(r.expr.text)
            out.append(RuleInfo(r.name, g.name, "alert" if r.alert else "record", text,
                                threshold_of(text) if r.alert else None, g.interval))
    return out


def anomaly_infos(rules: Sequence[AnomalyRule]) -> list[RuleInfo]:
    out = []
    for r in rules:
        what = "value" if r.input == "samples" else f"window {r.field}"
        out.append(RuleInfo(r.alert, r.group, "anomaly", f"{r.selector.text} {what}: {r.detector} score "
                            f">= {r.threshold:g}", Threshold(r.selector.text, ">=", r.threshold), 10.0))
    return out


def auto_warmup(loaded: LoadedRules, anomaly: Sequence[AnomalyRule] = ()) -> float:
    """Long enough for an alert already pending or held by keep_firing_for at the range's start to be so."""
    return max([0.0, *(r.hold + r.keep_firing_for for g in loaded.groups for r in g.rules if r.alert),
                *(r.hold + r.keep_firing_for for r in anomaly)])


def run_backtest(client: Client, loaded: LoadedRules, start: float, end: float, lateness: float,
                 warmup: float, with_compare: bool = False, charts: bool = False,
                 flap_window: float = DEFAULT_FLAP_WINDOW,
                 progress: Callable[[float, float, float], None] | None = None,
                 anomaly: Sequence[AnomalyRule] = ()) -> BacktestResult:
    """Replay (start - warmup, end] (plus the history the rules read before it) and sum it up.
    `progress(done, origin, end)` is called as event time advances. `anomaly` rules score the stored
    samples or window aggregates of the same range through the anomaly agent's scorer (`AnomalyReplay`)."""
    rules = rule_infos(loaded) + anomaly_infos(anomaly)
    recorded = sorted({r.name for r in rules if r.kind == "record"})
    read_from = start - warmup - loaded.retention
    read_to = end + lateness  # so the watermark (newest - lateness) reaches `end`
    series = stored_series(client, read_from, read_to, recorded)
    count = sample_count(client, read_from, read_to, recorded)
    first = _first_sample(client, read_from, read_to, recorded) if series.ids else start
    origin = max(start - warmup, first)
    probes: dict[str, Probe] = {}
    if charts:
        every = max(min(r.interval for r in rules), (end - origin) / CHART_POINTS) if rules else 60.0
        for r in rules:
            if r.kind == "alert":
                probes[r.name] = Probe(r.name, r.threshold.expr if r.threshold else r.expr, math.ceil(every))
    replay = RulesReplay(loaded, origin, list(probes.values()),
                         on_progress=(lambda wm: progress(wm, origin, end)) if progress else None)
    replay.add_series(series.ids, series.names, series.labels, series.kinds)
    scoring = AnomalyReplay(anomaly)
    scoring.add_series(series.ids, series.names, series.labels)
    began = time.perf_counter()
    n = 0
    reading = loaded.groups or scoring.reads_samples  # anomaly rules on aggregates alone need no samples
    for _, sids, ts, values in sample_slices(client, read_from, read_to, recorded,
                                             slice_seconds(count, read_from, read_to)) if reading else ():
        n += len(ts)
        replay.feed(sids, ts, values)
        scoring.feed_samples(sids, ts, values)
    names_read = scoring.aggregate_names()
    if names_read != []:
        for rows in aggregate_slices(client, read_from, read_to, names_read):
            scoring.feed_aggregates(rows)
    elapsed = time.perf_counter() - began
    events = sorted([e for e in replay.alerts + scoring.alerts if e.event_time <= end],
                    key=lambda e: e.event_time)
    spans = [s for s in alert_spans(events) if s.resolved_at is None or s.resolved_at >= start]
    names = [r.name for r in rules if r.kind != "record"]
    result = BacktestResult(start, end, origin, rules, [e for e in events if e.event_time >= start], spans,
                            summarize(spans, names, start, end, flap_window), n, len(series.ids), elapsed,
                            replay.errors + scoring.errors, probes=probes)
    if with_compare:
        live = live_alerts(client, start, end, names)
        result.comparison = compare(result.events, live)
        result.live_summaries = summarize(alert_spans(live), names, start, end, flap_window)
    return result


def _first_sample(client: Client, start: float, end: float, skip: Sequence[str]) -> float:
    rows = rows_of(client, "first sample", "SELECT toUnixTimestamp64Milli(min(ts)) FROM samples WHERE "
                 "ts > {start:DateTime64(3)} AND ts <= {end:DateTime64(3)} AND name NOT IN {skip:Array(String)}",
                 start, end, skip)
    return float(rows[0][0]) / 1000.0 if rows and rows[0][0] is not None else start


# -- layout ------------------------------------------------------------------------------------------

def _t(t: float | None) -> str:
    return "" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _labels(labels: dict[str, str]) -> str:
    return format_labels({k: v for k, v in labels.items() if k not in ("alertname", "__name__")})


def _value(v: float) -> str:
    return f"{v:.6g}"


def alerts_table(spans: Sequence[AlertSpan]) -> Table:
    rows = [[s.rule, _labels(s.labels), _t(s.pending_at), _t(s.firing_at), _t(s.resolved_at), _value(s.value)]
            for s in sorted(spans, key=lambda s: (s.pending_at, s.rule))]
    return Table(["rule", "labels", "pending", "firing", "resolved", "value"], rows)


def summary_table(summaries: Sequence[RuleSummary], live: Sequence[RuleSummary] = ()) -> Table:
    live_by = {s.rule: s for s in live}
    cols = ["rule", "alerts", "fired", "firing time", "flaps", "pending only", "pending to firing (median)"]
    if live:
        cols += ["fired live", "firing time live"]
    rows = []
    for s in summaries:
        row = [s.rule, str(s.alerts), str(s.fired), _dur(s.firing_seconds), str(s.flaps), str(s.pending_only),
               _dur(s.median_pending_to_firing)]
        if live:
            ls = live_by.get(s.rule)
            row += [str(ls.fired) if ls else "0", _dur(ls.firing_seconds) if ls else "0 s"]
        rows.append(row)
    return Table(cols, rows)


def _dur(seconds: float) -> str:
    if math.isnan(seconds):
        return "n/a"
    if seconds < 3600:
        return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
    return duration(seconds)


def comparison_table(c: Comparison) -> Table:
    rows = [["only backtest", e.rule, e.state, _t(e.event_time), _labels(e.labels)] for e in c.only_backtest]
    rows += [["only live", e.rule, e.state, _t(e.event_time), _labels(e.labels)] for e in c.only_live]
    rows.sort(key=lambda r: (r[3], r[1]))
    return Table(["where", "rule", "state", "at", "labels"], rows)


def headline(r: BacktestResult, files: Sequence[str]) -> str:
    n_alert = sum(1 for x in r.rules if x.kind == "alert")
    n_anomaly = sum(1 for x in r.rules if x.kind == "anomaly")
    anomaly = f", {n_anomaly} anomaly rules" if n_anomaly else ""
    return (f"{', '.join(files)} over {_t(r.start)} to {_t(r.end)} UTC: {r.samples:,} samples of {r.series:,} "
            f"series, {n_alert} alerting and {len(r.rules) - n_alert - n_anomaly} recording rules{anomaly}, "
            "first tick at or after "
            f"{_t(r.origin)}; replayed in {r.elapsed:.1f} s ({r.speed:,.0f}x real time)")


def build_document(r: BacktestResult, files: Sequence[str], charts: bool = True) -> Document:
    doc = Document("Rule backtest", headline(r, files))
    doc.sections.append(Section("Per-rule summary", tables=[summary_table(r.summaries, r.live_summaries)],
                                paragraphs=["Flaps: an alert firing again less than the flap window after the "
                                            "same alert (same labels) resolved. Pending only: alerts that "
                                            "resolved before `for` elapsed."]))
    if r.comparison is not None:
        c = r.comparison
        para = (f"Transitions in the `alerts` table (live) over the same range: {len(c.matched)} identical, "
                f"{len(c.only_backtest)} only in the backtest, {len(c.only_live)} only live.")
        doc.sections.append(Section("Compared with the alerts recorded live", paragraphs=[para],
                                    tables=[comparison_table(c)] if not c.identical else []))
    doc.sections.append(Section("Alerts", tables=[alerts_table(r.spans)]))
    if charts:
        section = Section("Rules over time")
        for i, info in enumerate(x for x in r.rules if x.kind == "alert"):
            chart = rule_chart(r, info, i)
            if chart is not None:
                section.charts.append(chart)
        doc.sections.append(section)
    if not r.samples:
        doc.notes.append("No samples stored in this range: widen --from/--to, let `watchkeeper up` run a while, or "
                         "load a demo week with `watchkeeper demo load` (while `watchkeeper up` is stopped).")
    if r.errors:
        doc.notes.append(f"{len(r.errors)} evaluation errors kept (the last {KEEP_PER_RULE} of each rule); the oldest: "
                         f"{r.errors[0]}")
    doc.notes.append("Replayed through the worker's own rules step (same ticks, for, keep_firing_for, templates, "
                     "recording rules). Samples that arrived late live were not used live but are replayed here.")
    if any(x.kind == "anomaly" for x in r.rules):
        doc.notes.append("Anomaly rules scored through the anomaly agent's own scorer, their detectors learning from "
                         "the first point read (the warm-up and the rules' history before --from).")
    return doc


def rule_chart(r: BacktestResult, info: RuleInfo, i: int) -> Chart | None:
    probe = r.probes.get(info.name)
    if probe is None:
        return None
    mine = [s for s in r.spans if s.rule == info.name]
    alerted = {k for k, (labels, _, _) in probe.points.items()
               if any(all(s.labels.get(lk) == lv for lk, lv in labels.items() if lk != "__name__") for s in mine)}
    keys = sorted(probe.points, key=lambda k: (k not in alerted, k))[:CHART_SERIES]

    def dt(t: float) -> datetime:
        return datetime.fromtimestamp(t, UTC)

    series = [(_labels(probe.points[k][0]) or probe.expr, [dt(t) for t in probe.points[k][1]], probe.points[k][2])
              for k in keys]

    def clip(a: float, b: float) -> tuple[datetime, datetime]:
        return dt(max(a, r.start)), dt(min(b, r.end))

    firing = [clip(s.firing_at, s.resolved_at or r.end) for s in mine if s.firing_at is not None]
    pending = [clip(s.pending_at, s.firing_at or s.resolved_at or r.end) for s in mine]
    th = info.threshold
    png = spans_chart(f"{info.name}: {probe.expr}"[:110], "value", series,
                      (f"threshold {th.op} {th.value:g}", th.value) if th else None, firing, pending)
    return Chart(f"rule_{i:03d}", f"{info.name} ({info.group}): {len(mine)} alerts; shaded: pending, firing", png)


def text_table(t: Table) -> str:
    """A table for the terminal: columns padded to their widest cell."""
    width = [max(len(c), *(len(row[i]) for row in t.rows)) if t.rows else len(c) for i, c in enumerate(t.columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(t.columns, width, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, width, strict=True)).rstrip() for row in t.rows]
    return "\n".join(lines)


def text_report(doc: Document) -> str:
    out = [doc.subtitle, ""]
    for s in doc.sections:
        if not s.tables and not s.paragraphs:
            continue
        out += [f"== {s.title} ==", *s.paragraphs]
        out += [text_table(t) for t in s.tables]
        out.append("")
    out += doc.notes
    return "\n".join(out)
