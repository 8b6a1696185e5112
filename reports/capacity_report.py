"""The capacity report: when will a metric cross a threshold (a disk fill up), from a fitted linear trend.

ClickHouse reduces each series to its least-squares moments (n, means, population variances and covariance,
with x in days relative to the end of the range); the slope, its standard error and the crossing time follow
in a few lines of arithmetic here. The uncertainty is the 95 % interval of the slope (normal approximation,
many points): the crossing is reported as a point estimate and an earliest-latest range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from watchkeeper.reports.charts import forecast_chart
from watchkeeper.reports.document import Chart, Document, Section, Table, num, when
from watchkeeper.reports.exhaustion import time_until_zero
from watchkeeper.reports.query_progress import QueryRunner
from watchkeeper.reports.series_source import SOURCES, format_labels
from watchkeeper.reports.timerange import TimeRange

Z95 = 1.959963984540054
MAX_CHARTS = 6


@dataclass
class Forecast:
    name: str
    series_id: int
    labels: dict[str, str]
    points: int
    level: float  # fitted value at the end of the range
    slope_per_day: float
    slope_stderr: float
    threshold: float
    last_value: float

    @property
    def days_to_threshold(self) -> float:
        return time_until_zero(self.threshold - self.level, self.slope_per_day)

    @property
    def days_range(self) -> tuple[float, float]:
        """Earliest and latest crossing with the slope at the ends of its 95 % interval."""
        gap = self.threshold - self.level
        hi = self.slope_per_day + Z95 * self.slope_stderr
        lo = self.slope_per_day - Z95 * self.slope_stderr
        return time_until_zero(gap, hi), time_until_zero(gap, lo)

    def crossing(self, end: datetime) -> datetime | None:
        d = self.days_to_threshold
        return None if math.isinf(d) or math.isnan(d) else end + timedelta(days=d)


def forecasts(
    q: QueryRunner, tr: TimeRange, metric: str, threshold: float, source: str = "aggregates"
) -> list[Forecast]:
    src = SOURCES[source]
    t = src.time_col
    rows = q.rows(
        f"linear fit of {metric}",
        f"""
        SELECT name, series_id, any(labels), count() AS n, avg(x), avg(y), varPopStable(x), varPopStable(y),
               covarPopStable(x, y), argMax(y, x)
        FROM (
            SELECT name, series_id, labels,
                   (toUnixTimestamp64Milli({t}) - toUnixTimestamp64Milli({{end:DateTime64(3)}})) / 86400000 AS x,
                   {src.point_value()} AS y
            FROM {src.table} FINAL
            WHERE name = {{metric:String}} AND {t} >= {{start:DateTime64(3)}} AND {t} < {{end:DateTime64(3)}}
        )
        GROUP BY name, series_id
        ORDER BY series_id
        """,
        {"start": tr.start, "end": tr.end, "metric": metric},
    )
    out = []
    for name, sid, labels, n, mx, my, vx, vy, cxy, last in rows:
        n = int(n)
        if n < 3 or vx <= 0:
            slope, se = math.nan, math.nan
            level = float(my)
        else:
            slope = cxy / vx
            level = my - slope * mx
            sse = max(n * (vy - slope * cxy), 0.0)
            se = math.sqrt(sse / (n - 2) / (n * vx))
        out.append(Forecast(name, int(sid), dict(labels), n, float(level), float(slope), float(se), threshold,
                            float(last)))
    out.sort(key=lambda f: (f.days_to_threshold if not math.isnan(f.days_to_threshold) else math.inf, f.series_id))
    return out


def hourly(q: QueryRunner, tr: TimeRange, sid: int, source: str) -> tuple[list[datetime], list[float]]:
    src = SOURCES[source]
    rows = q.rows(
        f"hourly means of series {sid:016x}",
        f"""
        SELECT toStartOfHour({src.time_col}) AS h, {src.mean_if('1')}
        FROM {src.table} FINAL
        WHERE series_id = {{sid:UInt64}} AND {src.time_col} >= {{start:DateTime64(3)}}
          AND {src.time_col} < {{end:DateTime64(3)}}
        GROUP BY h ORDER BY h
        """,
        {"sid": sid, "start": tr.start, "end": tr.end},
    )
    return [r[0] for r in rows], [float(r[1]) for r in rows]


def build_capacity_report(
    q: QueryRunner, tr: TimeRange, metric: str, threshold: float, source: str = "aggregates", charts: bool = True
) -> tuple[Document, list[Forecast]]:
    q.expect(1)
    fc = forecasts(q, tr, metric, threshold, source)
    q.expect(min(len(fc), MAX_CHARTS) if charts else 0)
    doc = Document("Capacity report", f"{metric} reaching {threshold:g} · trend fitted over {tr.label()}")
    rows = []
    for f in fc:
        early, late = f.days_range
        rows.append([
            format_labels(f.labels), str(f.points), num(f.last_value), num(f.level), num(f.slope_per_day, 4),
            num(f.slope_stderr, 4), num(f.days_to_threshold, 1), f"{num(early, 1)} to {num(late, 1)}",
            when(f.crossing(tr.end)),
        ])
    doc.sections.append(
        Section(
            "Forecast",
            [f"Days until each series of {metric} reaches {threshold:g}, from a least-squares line over the range "
             "(level = fitted value at the end of the range). The range is the 95 % interval of the slope; "
             "'never' means the trend is flat or falling (or may be, at that end of the interval)."],
            [Table(["series", "points", "last", "level", "slope / day", "± stderr", "days to threshold",
                    "95 % range (days)", "crossing"], rows)],
        )
    )
    if charts:
        section = Section("Charts")
        for f in fc[:MAX_CHARTS]:
            xs, ys = hourly(q, tr, f.series_id, source)
            if not xs or math.isnan(f.slope_per_day):
                continue
            horizon = f.days_to_threshold if 0 < f.days_to_threshold < 60 else 14.0
            steps = 40
            fit_x, fit_y, lo, hi = [], [], [], []
            span_days = tr.seconds / 86400
            for i in range(steps + 1):
                d = -span_days + (span_days + horizon * 1.1) * i / steps
                fit_x.append(tr.end + timedelta(days=d))
                fit_y.append(f.level + f.slope_per_day * d)
                spread = Z95 * f.slope_stderr * abs(d)
                lo.append(fit_y[-1] - spread)
                hi.append(fit_y[-1] + spread)
            section.charts.append(Chart(
                f"capacity-{f.series_id:016x}",
                f"{metric}{format_labels(f.labels)}: observed, trend and threshold",
                forecast_chart(f"{metric}{format_labels(f.labels)}"[:80], metric, xs, ys, fit_x, fit_y, lo, hi,
                               threshold),
            ))
        doc.sections.append(section)
    return doc, fc
