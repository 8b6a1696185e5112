"""Every figure of the SLO, trend and capacity reports against numpy on the same (replayed) week of data."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from clickhouse_connect.driver.client import Client

from tests import report_dataset as rd
from watchkeeper.cli import main
from watchkeeper.reports.capacity_report import Z95, build_capacity_report
from watchkeeper.reports.clickhouse_reader import get_reader
from watchkeeper.reports.document import duration, pct
from watchkeeper.reports.query_progress import QueryRunner
from watchkeeper.reports.render import write_html, write_markdown
from watchkeeper.reports.slo_report import build_slo_report, time_to_exhaustion
from watchkeeper.reports.timerange import TimeRange
from watchkeeper.reports.trend_report import build_trend_report

TR = TimeRange(rd.START, rd.END)
APPROX = {"rel": 1e-9, "abs": 1e-12}


@pytest.fixture(scope="module")
def loaded(chdb_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, rd.Dataset]:
    """One database for the module: the dataset inserted twice, as if the topics were replayed."""
    import clickhouse_connect

    db = "t_reports_" + tmp_path_factory.mktemp("x").name.replace("-", "_")[-12:]
    clickhouse_connect.get_client(dsn=f"chdb://{chdb_dir}").command(f"CREATE DATABASE IF NOT EXISTS {db}")
    dsn = f"chdb://{chdb_dir}?database={db}"
    client = get_reader(dsn)
    rd.create_tables(client)
    ds = rd.build()
    rd.load(client, ds, replays=2)
    return dsn, ds


def _runner(dsn: str) -> QueryRunner:
    return QueryRunner(get_reader(dsn), steps=10, quiet=True)


def test_replay_is_stored_twice_but_counted_once(loaded: tuple[str, rd.Dataset]) -> None:
    dsn, ds = loaded
    client: Client = get_reader(dsn)
    total = sum(s.ts.size for s in ds.samples)
    assert client.query("SELECT count() FROM samples").result_rows[0][0] in (total, 2 * total)
    assert client.query("SELECT count() FROM samples FINAL").result_rows[0][0] == total


def test_slo_report_figures(loaded: tuple[str, rd.Dataset], tmp_path: Path) -> None:
    dsn, ds = loaded
    with _runner(dsn) as q:
        doc, figures = build_slo_report(q, TR, charts=True)
    assert [f.sloth_id for f in figures] == sorted(rd.SLOS)
    end = rd.END.timestamp()
    for f in figures:
        service, slo, objective, _ = rd.SLOS[f.sloth_id]
        s = ds.sample("slo:sli_error:ratio_rate5m", sloth_id=f.sloth_id)
        budget = 1 - objective
        in_range = (s.ts >= rd.START.timestamp()) & (s.ts < end)
        ratio = s.values[in_range].mean()
        assert (f.service, f.slo, f.objective, f.period_days) == (service, slo, objective, 30.0)
        assert f.samples == in_range.sum() == 7 * 1440
        assert f.error_ratio == pytest.approx(ratio, **APPROX)
        assert f.attainment == pytest.approx(1 - ratio, **APPROX)
        assert f.burn_rate_range == pytest.approx(ratio / budget, **APPROX)
        assert f.budget_burned == pytest.approx(ratio / budget * 7 / 30, **APPROX)
        remaining = 1 - s.values[s.ts >= end - 30 * 86400].mean() / budget
        assert f.budget_remaining == pytest.approx(remaining, **APPROX)
        for w, secs in {"1h": 3600, "6h": 21600, "1d": 86400, "30d": 30 * 86400}.items():
            assert f.burn[w] == pytest.approx(s.values[s.ts >= end - secs].mean() / budget, **APPROX), w
        assert f.burn_now == pytest.approx(s.values[-1] / budget, **APPROX)
        burn_1h = s.values[s.ts >= end - 3600].mean() / budget
        assert f.time_to_exhaustion == pytest.approx(remaining * 30 * 86400 / burn_1h, **APPROX)
        assert f.last_sample == datetime.fromtimestamp(s.ts[-1], UTC).replace(tzinfo=None)
        assert f.burn_from_recordings == ()  # no 1h/6h/1d recordings in this dataset: means of the 5 m ratios
    checkout = figures[0]
    assert checkout.sloth_id == "checkout-requests-availability"
    assert checkout.burn["1h"] == pytest.approx(5.0, rel=1e-6)  # the last hour runs at 0.5 %: 5x the budget
    assert checkout.status == "burning faster than budget"
    assert figures[1].status == "ok"
    # The rendered reports print the same figures and carry the charts.
    md = tmp_path / "slo.md"
    files = write_markdown(doc, md)
    text = md.read_text()
    for f in figures:
        assert pct(f.attainment) in text and pct(f.budget_remaining, 1) in text
        assert duration(f.time_to_exhaustion) in text
    pngs = [p for p in files if p.suffix == ".png"]
    assert len(pngs) == 4 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert f"]({md.stem}_charts/{pngs[0].name})" in text
    html = tmp_path / "slo.html"
    write_html(doc, html)
    assert html.read_text().count("data:image/png;base64,") == 4


def test_budget_matches_a_hand_computation(ch_dsn: str) -> None:
    """A 99.9 % SLO at a steady 0.05 % error ratio for 30 days with one 3-hour incident at 2 %.

    Period error ratio = 0.0005 + (0.02 - 0.0005) * 180 / 43200 = 0.00058125 (one sample a minute), so the
    budget remaining is 1 - 0.00058125 / 0.001 = 41.875 %. Sloth's 1 h recording says 0.0008, a burn rate of
    0.8, so the rest lasts 0.41875 * 30 d / 0.8 = 15.7 days.
    """
    client = get_reader(ch_dsn)
    rd.create_tables(client)
    end = rd.END.timestamp()
    ts = np.arange(end - 30 * 86400, end, 60.0)
    ratio = np.full(ts.size, 0.0005)
    ratio[(ts >= end - 10 * 86400) & (ts < end - 10 * 86400 + 3 * 3600)] = 0.02
    labels = {"sloth_id": "api-availability", "sloth_service": "api", "sloth_slo": "availability"}
    ds = rd.Dataset(samples=[
        rd.Series("slo:sli_error:ratio_rate5m", {**labels, "sloth_window": "5m"}, ts, ratio),
        rd.Series("slo:objective:ratio", labels, ts[-1:], np.array([0.999])),
    ])
    # Sloth's own 1 h recording (from raw events) at 0.0008: the report's 1 h burn is what the alert saw, 0.8.
    rec_ts = ts[-10:]
    ds.samples.append(rd.Series("slo:sli_error:ratio_rate1h", {**labels, "sloth_window": "1h"}, rec_ts,
                                np.full(rec_ts.size, 0.0008)))
    rd.load(client, ds, replays=3)
    with _runner(ch_dsn) as q:
        _, (f,) = build_slo_report(q, TimeRange(rd.END - timedelta(days=30), rd.END), charts=False)
    assert f.burn_from_recordings == ("1h",)
    assert f.burn["1h"] == pytest.approx(0.8, rel=1e-9)
    assert f.burn["6h"] == pytest.approx(0.5, rel=1e-9)
    assert f.budget_remaining == pytest.approx(0.41875, rel=1e-9)
    assert f.burn["30d"] == pytest.approx(0.58125, rel=1e-9)
    assert f.budget_burned == pytest.approx(0.58125, rel=1e-9)
    assert f.attainment == pytest.approx(1 - 0.00058125, rel=1e-12)
    assert f.time_to_exhaustion == pytest.approx(0.41875 * 30 / 0.8 * 86400, rel=1e-9)
    assert time_to_exhaustion(-0.1, 3, 100) == 0 and math.isinf(time_to_exhaustion(0.5, 0, 100))


def _mean(a: rd.AggSeries, lo: datetime, hi: datetime) -> float:
    m = (a.start >= lo.timestamp()) & (a.start < hi.timestamp())
    return float(a.sum[m].sum() / a.count[m].sum()) if m.any() else math.nan


def test_trend_report_figures(loaded: tuple[str, rd.Dataset], tmp_path: Path) -> None:
    dsn, ds = loaded
    metrics = ["cpu_percent", "http_requests_per_second"]
    with _runner(dsn) as q:
        doc, series, per_metric = build_trend_report(q, TR, metrics, top=3)
    week = (rd.START - timedelta(days=7), rd.END - timedelta(days=7))
    month = (rd.START.replace(month=rd.START.month - 1), rd.END.replace(month=rd.END.month - 1))
    aggs = [a for a in ds.aggregates if a.name in metrics]
    assert len(series) == len(aggs) == 5
    by_id = {s.series_id: s for s in series}
    for a in aggs:
        s = by_id[a.id]
        assert (s.name, s.labels) == (a.name, a.labels)
        cur, wk, mo = _mean(a, rd.START, rd.END), _mean(a, *week), _mean(a, *month)
        assert (s.current, s.previous_week, s.previous_month) == pytest.approx((cur, wk, mo), **APPROX)
        assert s.wow == pytest.approx((cur - wk) / abs(wk), **APPROX)
        assert s.mom == pytest.approx((cur - mo) / abs(mo), **APPROX)
    for m in per_metric:
        group = [a for a in aggs if a.name == m.name]
        def pooled(lo: datetime, hi: datetime, group: list[rd.AggSeries] = group) -> float:
            sel = [(a.start >= lo.timestamp()) & (a.start < hi.timestamp()) for a in group]
            return sum(a.sum[k].sum() for a, k in zip(group, sel, strict=True)) / sum(
                a.count[k].sum() for a, k in zip(group, sel, strict=True))
        assert m.series == len(group)
        assert m.current == pytest.approx(pooled(rd.START, rd.END), **APPROX)
        assert m.previous_week == pytest.approx(pooled(*week), **APPROX)
        assert m.previous_month == pytest.approx(pooled(*month), **APPROX)
    # Biggest movers: db-1 cpu doubled-ish (45 -> 70), search traffic fell 150 -> 90.
    expected = sorted(aggs, key=lambda a: -abs(_mean(a, rd.START, rd.END) / _mean(a, *week) - 1))[:3]
    movers_table = doc.sections[1].tables[0]
    assert [row[0].split("{")[0] for row in movers_table.rows] == [a.name for a in expected]
    assert movers_table.rows[0][0] == 'cpu_percent{host="db-1"}'
    assert len(doc.sections[1].charts) == 1
    write_markdown(doc, tmp_path / "trend.md")
    assert pct(by_id[expected[0].id].wow, 1) in (tmp_path / "trend.md").read_text()


@pytest.mark.parametrize("source", ["aggregates", "samples"])
def test_capacity_report_figures(loaded: tuple[str, rd.Dataset], source: str) -> None:
    dsn, ds = loaded
    with _runner(dsn) as q:
        doc, fc = build_capacity_report(q, TR, "disk_used_percent", 90.0, source, charts=source == "aggregates")
    assert len(fc) == 3
    by_host = {f.labels["host"]: f for f in fc}
    end = rd.END.timestamp()
    for a in (a for a in ds.aggregates if a.name == "disk_used_percent"):
        x = (a.start - end) / 86400
        y = a.sum / a.count
        slope, intercept = np.polyfit(x, y, 1)
        resid = y - (intercept + slope * x)
        se = math.sqrt((resid**2).sum() / (x.size - 2) / ((x - x.mean()) ** 2).sum())
        f = by_host[a.labels["host"]]
        assert f.points == x.size
        assert f.slope_per_day == pytest.approx(slope, rel=1e-7)
        assert f.level == pytest.approx(intercept, rel=1e-9)
        assert f.slope_stderr == pytest.approx(se, rel=1e-6)
        assert f.last_value == pytest.approx(y[-1], **APPROX)
        if slope > 0:
            assert f.days_to_threshold == pytest.approx((90 - intercept) / slope, rel=1e-6)
            early, late = f.days_range
            assert early == pytest.approx((90 - intercept) / (slope + Z95 * se), rel=1e-6)
            assert late == pytest.approx((90 - intercept) / (slope - Z95 * se), rel=1e-6)
        else:
            assert math.isinf(f.days_to_threshold)
    # web-1 fills at 1.5 %/day from 72 %: about 12 days to 90 %.
    assert by_host["web-1"].days_to_threshold == pytest.approx(12, abs=0.5)
    assert fc[0].labels["host"] == "web-1"
    if source == "aggregates":
        assert len(doc.sections[1].charts) == 3


def test_report_command_writes_html_with_charts(loaded: tuple[str, rd.Dataset], tmp_path: Path) -> None:
    dsn, _ = loaded
    out = tmp_path / "cap.html"
    args = ["report", "capacity", "--dsn", dsn, "--metric", "disk_used_percent", "--threshold", "90",
            "--from", rd.START.isoformat(), "--to", rd.END.isoformat(), "--format", "html", "-o", str(out)]
    assert main(args) == 0
    text = out.read_text()
    assert "Capacity report" in text and text.count("data:image/png;base64,") == 3
    two = ["--metric", "a", "--metric", "b"]
    assert main(["report", "capacity", "--dsn", dsn, *two, "-o", str(tmp_path / "x.md")]) == 1
