"""The trend report: week over week and month over month change of chosen metrics, and the biggest movers.

For each series the mean over the report range is compared with the mean over the same range one week
earlier and one calendar month earlier (ClickHouse `subtractWeeks`/`subtractMonths`), all in one query.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from watchkeeper.reports.charts import line_chart
from watchkeeper.reports.document import Chart, Document, Section, Table, num, pct
from watchkeeper.reports.query_progress import QueryRunner
from watchkeeper.reports.series_source import SOURCES, format_labels
from watchkeeper.reports.timerange import TimeRange

MAX_SERIES_ROWS = 60


class _Changes:
    """Week-over-week and month-over-month change of a value against its earlier values."""

    current: float
    previous_week: float
    previous_month: float

    @property
    def wow(self) -> float:
        return _change(self.current, self.previous_week)

    @property
    def mom(self) -> float:
        return _change(self.current, self.previous_month)


@dataclass
class SeriesTrend(_Changes):
    name: str
    series_id: int
    labels: dict[str, str]
    current: float
    previous_week: float
    previous_month: float


@dataclass
class MetricTrend(_Changes):
    name: str
    series: int
    current: float
    previous_week: float
    previous_month: float


def _change(cur: float, prev: float) -> float:
    """Relative change; nan when either side has no data or the base is zero."""
    if math.isnan(cur) or math.isnan(prev) or prev == 0:
        return math.nan
    return (cur - prev) / abs(prev)


def _conds(t: str) -> dict[str, str]:
    s, e = "{start:DateTime64(3)}", "{end:DateTime64(3)}"
    return {
        "cur": f"{t} >= {s} AND {t} < {e}",
        "week": f"{t} >= subtractWeeks({s}, 1) AND {t} < subtractWeeks({e}, 1)",
        "month": f"{t} >= subtractMonths({s}, 1) AND {t} < subtractMonths({e}, 1)",
    }


def trend_figures(
    q: QueryRunner, tr: TimeRange, metrics: list[str], source: str = "aggregates"
) -> tuple[list[SeriesTrend], list[MetricTrend]]:
    src = SOURCES[source]
    t = src.time_col
    c = _conds(t)
    where_names = "AND name IN {metrics:Array(String)}" if metrics else "AND name NOT LIKE 'slo:%'"
    lower = "least(subtractMonths({start:DateTime64(3)}, 1), subtractWeeks({start:DateTime64(3)}, 1))"
    rows = q.rows(
        "series means (this range, a week and a month earlier)",
        f"""
        SELECT name, series_id, any(labels),
               {src.mean_if(c['cur'])}, {src.mean_if(c['week'])}, {src.mean_if(c['month'])}
        FROM {src.table} FINAL
        WHERE {t} >= {lower} AND {t} < {{end:DateTime64(3)}} {where_names}
        GROUP BY name, series_id
        ORDER BY name, series_id
        """,
        {"start": tr.start, "end": tr.end, "metrics": metrics},
    )
    series = [SeriesTrend(r[0], int(r[1]), dict(r[2]), _f(r[3]), _f(r[4]), _f(r[5])) for r in rows]
    metric_rows = q.rows(
        "metric means",
        f"""
        SELECT name, uniqExact(series_id),
               {src.mean_if(c['cur'])}, {src.mean_if(c['week'])}, {src.mean_if(c['month'])}
        FROM {src.table} FINAL
        WHERE {t} >= {lower} AND {t} < {{end:DateTime64(3)}} {where_names}
        GROUP BY name ORDER BY name
        """,
        {"start": tr.start, "end": tr.end, "metrics": metrics},
    )
    per_metric = [MetricTrend(r[0], int(r[1]), _f(r[2]), _f(r[3]), _f(r[4])) for r in metric_rows]
    return series, per_metric


def biggest_movers(series: list[SeriesTrend], n: int = 10) -> list[SeriesTrend]:
    """Series with the largest absolute week-over-week change (ties broken by name and id, so stable)."""
    ranked = [s for s in series if not math.isnan(s.wow)]
    ranked.sort(key=lambda s: (-abs(s.wow), s.name, s.series_id))
    return ranked[:n]


def hourly_means(
    q: QueryRunner, start: datetime, end: datetime, ids: list[int], source: str
) -> dict[int, tuple[list[datetime], list[float]]]:
    src = SOURCES[source]
    rows = q.rows(
        "hourly means of the movers",
        f"""
        SELECT series_id, toStartOfHour({src.time_col}) AS h, {src.mean_if('1')}
        FROM {src.table} FINAL
        WHERE series_id IN {{ids:Array(UInt64)}} AND {src.time_col} >= {{start:DateTime64(3)}}
          AND {src.time_col} < {{end:DateTime64(3)}}
        GROUP BY series_id, h ORDER BY series_id, h
        """,
        {"ids": ids, "start": start, "end": end},
    )
    out: dict[int, tuple[list[datetime], list[float]]] = defaultdict(lambda: ([], []))
    for sid, h, v in rows:
        out[int(sid)][0].append(h)
        out[int(sid)][1].append(_f(v))
    return out


def build_trend_report(
    q: QueryRunner, tr: TimeRange, metrics: list[str], source: str = "aggregates", top: int = 10, charts: bool = True
) -> tuple[Document, list[SeriesTrend], list[MetricTrend]]:
    q.expect(3 if charts else 2)
    series, per_metric = trend_figures(q, tr, metrics, source)
    doc = Document("Trend report", f"{tr.label()} · from {source}")
    doc.sections.append(
        Section(
            "Metrics",
            ["Mean of each metric over all its series in the range, against the same range one week and one "
             "calendar month earlier."],
            [Table(
                ["metric", "series", "mean", "week before", "WoW", "month before", "MoM"],
                [[m.name, str(m.series), num(m.current, 4), num(m.previous_week, 4), pct(m.wow, 1),
                  num(m.previous_month, 4), pct(m.mom, 1)] for m in per_metric],
            )],
        )
    )
    movers = biggest_movers(series, top)
    mover_section = Section(
        "Biggest movers",
        [f"The {len(movers)} series whose mean changed most week over week."],
        [Table(
            ["series", "mean", "week before", "WoW", "MoM"],
            [[s.name + format_labels(s.labels), num(s.current, 4), num(s.previous_week, 4), pct(s.wow, 1),
              pct(s.mom, 1)] for s in movers],
        )],
    )
    if charts and movers:
        shown = movers[:5]
        hourly = hourly_means(q, tr.start - timedelta(days=7), tr.end, [s.series_id for s in shown], source)
        lines = []
        for s in shown:
            xs, ys = hourly.get(s.series_id, ([], []))
            lines.append((f"{s.name}{format_labels(s.labels)}"[:70], xs, ys))
        mover_section.charts.append(
            Chart("trend-movers", "Hourly means of the biggest movers, the week before the range and the range",
                  line_chart("Biggest movers", "value", lines, vlines=[("start of range", tr.start)]))
        )
    doc.sections.append(mover_section)
    if len(series) <= MAX_SERIES_ROWS:
        doc.sections.append(
            Section(
                "All series",
                tables=[Table(
                    ["series", "mean", "week before", "WoW", "month before", "MoM"],
                    [[s.name + format_labels(s.labels), num(s.current, 4), num(s.previous_week, 4), pct(s.wow, 1),
                      num(s.previous_month, 4), pct(s.mom, 1)] for s in series],
                )],
            )
        )
    else:
        doc.notes.append(f"{len(series)} series: the per-series table is left out; see the movers above.")
    return doc, series, per_metric


def _f(v: object) -> float:
    return math.nan if v is None else float(v)  # type: ignore[arg-type]
