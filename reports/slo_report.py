"""The SLO report: attainment, error budget burned and remaining, burn rates and time to exhaustion.

Computed in ClickHouse from the SLI recordings the rule engine writes back as samples (Sloth's
`slo:sli_error:ratio_rate5m`, labels `sloth_id`, `sloth_service`, `sloth_slo`) and the metadata recordings
`slo:objective:ratio` and `slo:time_period:days`. Ratios over the range and the period are the mean of the
5 m ratios in it, exactly Sloth's own `slo:sli_error:ratio_rate30d` (sum over time / count over time); the
1 h, 6 h and 1 d burn rates use Sloth's recordings of those windows when fresh ones exist (what the alerts
saw) and the same mean otherwise. Every query reads `FINAL`, so a replayed topic never doubles a sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from watchkeeper.reports.charts import line_chart
from watchkeeper.reports.document import Chart, Document, Section, Table, duration, num, pct, when
from watchkeeper.reports.exhaustion import time_until_zero
from watchkeeper.reports.query_progress import QueryRunner
from watchkeeper.reports.timerange import TimeRange

SLI_METRIC = "slo:sli_error:ratio_rate5m"
BURN_WINDOWS = {"1h": 3600, "6h": 6 * 3600, "1d": 86400, "30d": 30 * 86400}
# Sloth records these windows from the raw events; when the rule engine has written them, the report uses the
# latest value (what the alerts saw) instead of the mean of the 5 m ratios. A value older than this is stale.
RECORDED_WINDOWS = ("1h", "6h", "1d")
RECORDED_FRESH_SECONDS = 15 * 60
DEFAULT_PERIOD_DAYS = 30.0


@dataclass
class SLOFigures:
    """Every number the report prints for one SLO (ratios in [0, 1], times in seconds, burn rates as multiples)."""

    sloth_id: str
    service: str
    slo: str
    objective: float
    period_days: float
    samples: int
    error_ratio: float
    attainment: float
    burn_rate_range: float
    budget_burned: float
    budget_remaining: float
    burn_now: float
    burn: dict[str, float] = field(default_factory=dict)
    burn_from_recordings: tuple[str, ...] = ()
    time_to_exhaustion: float = math.inf
    last_sample: datetime | None = None

    @property
    def error_budget(self) -> float:
        return 1 - self.objective

    @property
    def status(self) -> str:
        if self.budget_remaining <= 0:
            return "budget exhausted"
        if self.burn.get("1h", 0.0) >= 14.4 or self.burn.get("6h", 0.0) >= 6:
            return "burning fast (page)"
        if self.burn.get("1d", 0.0) >= 3 or self.burn.get("30d", 0.0) > 1:
            return "burning (ticket)"
        if self.burn.get("1h", 0.0) > 1:
            return "burning faster than budget"
        return "ok"


def slo_figures(q: QueryRunner, tr: TimeRange) -> list[SLOFigures]:
    """Compute the figures of every SLO that has SLI samples before the end of `tr`."""
    meta_rows = q.rows(
        "SLO objectives",
        """
        SELECT labels['sloth_id'] AS id, name, argMax(value, ts)
        FROM samples FINAL
        WHERE name IN ('slo:objective:ratio', 'slo:time_period:days') AND ts < {end:DateTime64(3)}
        GROUP BY id, name
        """,
        {"end": tr.end},
    )
    objectives: dict[str, float] = {}
    periods: dict[str, float] = {}
    for sid, name, value in meta_rows:
        (objectives if name == "slo:objective:ratio" else periods)[sid] = float(value)
    period_days = sorted({int(periods.get(s, DEFAULT_PERIOD_DAYS)) for s in objectives} | {int(DEFAULT_PERIOD_DAYS)})
    # One conditional average per distinct SLO period (30 d and 28 d at most), chosen per SLO below.
    period_cols = ",\n".join(
        f"avgIf(value, ts >= {{end:DateTime64(3)}} - toIntervalDay({d})) AS period_{d}" for d in period_days
    )
    burn_cols = ",\n".join(
        f"avgIf(value, ts >= {{end:DateTime64(3)}} - toIntervalSecond({s})) AS burn_{w}"
        for w, s in BURN_WINDOWS.items()
    )
    lookback = max([*period_days, 30]) * 86400
    rows = q.rows(
        "SLI error ratios",
        f"""
        SELECT labels['sloth_id'] AS id, any(labels['sloth_service']), any(labels['sloth_slo']),
               countIf(ts >= {{start:DateTime64(3)}}) AS n,
               avgIf(value, ts >= {{start:DateTime64(3)}}) AS ratio_range,
               {period_cols},
               {burn_cols},
               argMax(value, ts) AS now_ratio, max(ts) AS last_ts
        FROM samples FINAL
        WHERE name = {{sli:String}} AND ts < {{end:DateTime64(3)}}
          AND ts >= least({{start:DateTime64(3)}}, {{end:DateTime64(3)}} - toIntervalSecond({lookback}))
        GROUP BY id
        ORDER BY id
        """,
        {"start": tr.start, "end": tr.end, "sli": SLI_METRIC},
    )
    recorded_rows = q.rows(
        "recorded SLI windows",
        """
        SELECT labels['sloth_id'] AS id, name, argMax(value, ts)
        FROM samples FINAL
        WHERE name IN {names:Array(String)} AND ts < {end:DateTime64(3)}
          AND ts >= {end:DateTime64(3)} - toIntervalSecond({fresh:UInt32})
        GROUP BY id, name
        """,
        {"names": [f"slo:sli_error:ratio_rate{w}" for w in RECORDED_WINDOWS], "end": tr.end,
         "fresh": RECORDED_FRESH_SECONDS},
    )
    recorded: dict[str, dict[str, float]] = {}
    for sid, name, value in recorded_rows:
        recorded.setdefault(sid, {})[name.removeprefix("slo:sli_error:ratio_rate")] = float(value)
    out = []
    for row in rows:
        sid, service, slo, n, ratio_range = row[0], row[1], row[2], int(row[3]), _f(row[4])
        by_period = dict(zip(period_days, (_f(v) for v in row[5 : 5 + len(period_days)]), strict=True))
        burns = row[5 + len(period_days) : 5 + len(period_days) + len(BURN_WINDOWS)]
        now_ratio, last_ts = _f(row[-2]), row[-1]
        if sid not in objectives:
            continue
        objective = objectives[sid]
        budget = 1 - objective
        days = periods.get(sid, DEFAULT_PERIOD_DAYS)
        period_ratio = by_period[int(days)]
        ratios = dict(zip(BURN_WINDOWS, (_f(v) for v in burns), strict=True))
        from_recordings = tuple(w for w in RECORDED_WINDOWS if w in recorded.get(sid, {}))
        ratios.update({w: recorded[sid][w] for w in from_recordings})
        burn = {w: r / budget for w, r in ratios.items()}
        burn_range = ratio_range / budget
        remaining = 1 - period_ratio / budget
        out.append(
            SLOFigures(
                sloth_id=sid,
                service=service,
                slo=slo,
                objective=objective,
                period_days=days,
                samples=n,
                error_ratio=ratio_range,
                attainment=1 - ratio_range,
                burn_rate_range=burn_range,
                budget_burned=burn_range * tr.seconds / (days * 86400),
                budget_remaining=remaining,
                burn_now=now_ratio / budget,
                burn=burn,
                burn_from_recordings=from_recordings,
                time_to_exhaustion=time_to_exhaustion(remaining, burn["1h"], days * 86400),
                last_sample=last_ts,
            )
        )
    return out


def time_to_exhaustion(remaining: float, burn_rate: float, period_seconds: float) -> float:
    """Seconds until the remaining budget is gone at `burn_rate` (1 = exactly the budget over the period)."""
    return time_until_zero(remaining * period_seconds, burn_rate)


def hourly_error_ratio(q: QueryRunner, tr: TimeRange, sloth_id: str) -> tuple[list[datetime], list[float]]:
    rows = q.rows(
        f"hourly SLI of {sloth_id}",
        """
        SELECT toStartOfHour(ts) AS h, avg(value)
        FROM samples FINAL
        WHERE name = {sli:String} AND labels['sloth_id'] = {id:String}
          AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
        GROUP BY h ORDER BY h
        """,
        {"sli": SLI_METRIC, "id": sloth_id, "start": tr.start, "end": tr.end},
    )
    return [r[0] for r in rows], [float(r[1]) for r in rows]


def build_slo_report(q: QueryRunner, tr: TimeRange, charts: bool = True) -> tuple[Document, list[SLOFigures]]:
    figures = slo_figures(q, tr)
    doc = Document(title="SLO report", subtitle=tr.label())
    if not figures:
        doc.sections.append(
            Section(
                "No SLOs",
                [f"No `{SLI_METRIC}` samples with a `slo:objective:ratio` before {when(tr.end)}. Generate rules "
                 "with `watchkeeper slo generate` and let the rule engine evaluate them."],
            )
        )
        return doc, figures
    summary = Table(
        ["SLO", "objective", "attainment", "budget burned (range)", "budget remaining (period)", "burn now",
         "burn 1h", "burn 6h", "burn 1d", "burn 30d", "exhausted in", "status"],
        [
            [f"{f.service} / {f.slo}", pct(f.objective), pct(f.attainment), pct(f.budget_burned, 1),
             pct(f.budget_remaining, 1), num(f.burn_now), num(f.burn["1h"]), num(f.burn["6h"]), num(f.burn["1d"]),
             num(f.burn["30d"]), duration(f.time_to_exhaustion), f.status]
            for f in figures
        ],
    )
    doc.sections.append(
        Section(
            "Summary",
            [
                "Attainment and budget burned cover the report range; budget remaining covers the SLO period "
                "ending at the end of the range (Sloth's slo:period_error_budget_remaining:ratio). Burn rates are "
                "multiples of the rate that spends exactly the budget in the period; time to exhaustion assumes "
                "the last hour's burn rate continues."
            ],
            [summary],
        )
    )
    q.expect(len(figures) if charts else 0)
    for f in figures:
        section = Section(
            f"{f.service} / {f.slo}",
            [
                f"Objective {pct(f.objective)} over {f.period_days:g} days (error budget {pct(f.error_budget)}). "
                f"In the range: error ratio {pct(f.error_ratio, 4)}, attainment {pct(f.attainment)}, "
                f"burn rate {num(f.burn_rate_range)}, {pct(f.budget_burned, 1)} of the period's budget burned "
                f"from {f.samples} SLI samples. Budget remaining: {pct(f.budget_remaining, 1)}; "
                f"at the last hour's burn rate it is exhausted in {duration(f.time_to_exhaustion)}. "
                f"Last SLI sample {when(f.last_sample)}."
            ],
        )
        if charts:
            xs, ys = hourly_error_ratio(q, tr, f.sloth_id)
            burned, acc = [], 0.0
            for y in ys:
                acc += y * 3600 / (f.error_budget * f.period_days * 86400)
                burned.append(acc * 100)
            section.charts.append(
                Chart(
                    f"slo-{f.sloth_id}-error-ratio",
                    f"{f.service} / {f.slo}: hourly error ratio against the page and ticket burn thresholds",
                    line_chart(
                        f"{f.slo}: error ratio",
                        "error ratio",
                        [("hourly error ratio", xs, ys)],
                        hlines=[("page: 14.4x budget", 14.4 * f.error_budget), ("budget (1x)", f.error_budget)],
                    ),
                )
            )
            section.charts.append(
                Chart(
                    f"slo-{f.sloth_id}-budget",
                    f"{f.service} / {f.slo}: share of the period's error budget burned since the start of the range",
                    line_chart(f"{f.slo}: budget burned", "% of budget", [("cumulative budget burned", xs, burned)],
                               hlines=[("whole budget", 100.0)]),
                )
            )
        doc.sections.append(section)
    return doc, figures


def default_span() -> timedelta:
    return timedelta(days=DEFAULT_PERIOD_DAYS)


def _f(v: object) -> float:
    """ClickHouse returns nan for an average over no rows; keep nan, never raise."""
    return math.nan if v is None else float(v)  # type: ignore[arg-type]
