"""Benchmark: SLO and trend report time over N series at 10 s resolution, and ClickHouse bytes per sample.

The issue's target is 30 days of 2,000 series at 10 s (518 M samples). On a 2-core machine shared with
other work that is too much for one session, so the default is 2,000 series x 1 day (17.3 M samples), plus
the same day a week earlier so the trend report has a week-over-week comparison (34.6 M in all);
`--days` scales it. Compression per sample does not depend on the length much (parts are compressed in
blocks), and the SLO report scans only the SLI recordings, so its time does not grow with the series count.

Baselines measured in the same run: a full `FINAL` scan of the samples (the least any report over all
samples can cost) and, for storage, 16 bytes per raw (int64 ts, float64 value) pair and the Gorilla paper's
1.37 bytes per pair.

    PYTHONPATH=. python bench/reports/run_reports_bench.py --series 2000 --days 1
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import clickhouse_connect
import numpy as np
import pyarrow as pa

from watchkeeper.reports.clickhouse_reader import get_reader
from watchkeeper.reports.query_progress import QueryRunner
from watchkeeper.reports.slo_report import build_slo_report
from watchkeeper.reports.timerange import TimeRange
from watchkeeper.reports.trend_report import build_trend_report
from watchkeeper.schemas.series_id import series_id

TABLES = Path(__file__).parent.parent.parent / "tests" / "fixtures" / "clickhouse" / "tables.sql"
GORILLA_BYTES_PER_SAMPLE = 1.37
END = datetime(2026, 11, 16, tzinfo=UTC)


def series_values(kind: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Four families of realistic host metrics, a quarter each (see README for why it matters)."""
    if kind == 0:  # counter: requests_total, integer increments
        return np.cumsum(rng.poisson(50, n)).astype(np.float64)
    if kind == 1:  # cpu percent, one decimal, random walk in [0, 100]
        return np.round(np.clip(40 + np.cumsum(rng.normal(0, 0.8, n)), 0, 100), 1)
    if kind == 2:  # disk used bytes, changes now and then
        steps = np.where(rng.random(n) < 0.05, rng.integers(4096, 1 << 20, n), 0)
        return (50e9 + np.cumsum(steps)).astype(np.float64)
    return np.where(rng.random(n) < 0.999, 1.0, 0.0)  # up / health gauges


def build_chunks(n_series: int, days: float, interval: float, chunk_series: int, shift_days: float = 0.0):
    """Samples of `n_series` series in chunks; `shift_days` moves them back in time (the comparison week)."""
    rng = np.random.default_rng(42 + int(shift_days))
    end = END.timestamp() - shift_days * 86400
    ts = np.arange(end - days * 86400, end, interval)
    ts_ms = (ts * 1000).astype(np.int64)
    names = ["http_requests_total", "cpu_percent", "disk_used_bytes", "up"]
    kinds = ["counter", "gauge", "gauge", "gauge"]
    for first in range(0, n_series, chunk_series):
        count = min(chunk_series, n_series - first)
        ids, labels, name_col, kind_col, values = [], [], [], [], []
        for i in range(first, first + count):
            k = i % 4
            lab = {"host": f"host-{i // 4:04d}", "job": "node", "region": f"r{i % 7}"}
            ids.append(series_id(names[k], lab))
            labels.append(list(lab.items()))
            name_col.append(names[k])
            kind_col.append(kinds[k])
            values.append(series_values(k, ts.size, rng))
        rep = np.repeat(np.arange(count), ts.size)
        yield pa.table({
            "series_id": pa.array(np.repeat(np.array(ids, dtype=np.uint64), ts.size), pa.uint64()),
            "name": pa.array(name_col, pa.string()).take(rep),
            "labels": pa.array(labels, pa.map_(pa.string(), pa.string())).take(rep),
            "kind": pa.array(kind_col, pa.string()).take(rep),
            "ts": pa.array(np.tile(ts_ms, count), pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            "value": pa.array(np.concatenate(values), pa.float64()),
        }), ids, name_col, labels, np.concatenate(values).reshape(count, ts.size), ts


def aggregates_table(ids, names, labels, vals: np.ndarray, ts: np.ndarray, per: int) -> pa.Table:
    """One-minute windows (6 samples each) from the same values, as the window engine would emit."""
    count, n = vals.shape
    w = vals[:, : n // per * per].reshape(count, -1, per)
    starts = ts[: n // per * per : per]
    nw = starts.size
    rep = np.repeat(np.arange(count), nw)
    zeros = pa.array(np.zeros(count * nw))
    start_ms = pa.array(np.tile((starts * 1000).astype(np.int64), count)).cast(pa.timestamp("ms", tz="UTC"))
    end_ms = pa.array(np.tile(((starts + per * 10) * 1000).astype(np.int64), count)).cast(pa.timestamp("ms", tz="UTC"))
    return pa.table({
        "series_id": pa.array(np.repeat(np.array(ids, dtype=np.uint64), nw), pa.uint64()),
        "name": pa.array(names, pa.string()).take(rep),
        "labels": pa.array(labels, pa.map_(pa.string(), pa.string())).take(rep),
        "kind": pa.array(["gauge"] * count, pa.string()).take(rep),
        "start": start_ms, "end": end_ms,
        "count": pa.array(np.full(count * nw, per, np.uint64)),
        "sum": pa.array(w.sum(axis=2).ravel()), "min": pa.array(w.min(axis=2).ravel()),
        "max": pa.array(w.max(axis=2).ravel()), "last": pa.array(w[:, :, -1].ravel()),
        "increase": zeros, "p50": zeros, "p90": zeros, "p95": zeros, "p99": zeros,
        "sketch": pa.array([""] * (count * nw), pa.string()),
    })


def sli_table(n_slos: int, days: float, interval: float) -> pa.Table:
    rng = np.random.default_rng(7)
    end = END.timestamp()
    ts = np.arange(end - days * 86400, end, interval)
    parts = []
    for j in range(n_slos):
        lab = {"sloth_id": f"svc{j}-availability", "sloth_service": f"svc{j}", "sloth_slo": "availability"}
        for name, labels, vals in (
            ("slo:sli_error:ratio_rate5m", {**lab, "sloth_window": "5m"}, np.abs(rng.normal(3e-4, 2e-4, ts.size))),
            ("slo:objective:ratio", lab, np.full(ts.size, 0.999)),
        ):
            parts.append(pa.table({
                "series_id": pa.array(np.full(ts.size, series_id(name, labels), np.uint64)),
                "name": pa.array([name] * ts.size), "labels": pa.array([list(labels.items())] * ts.size,
                                                                       pa.map_(pa.string(), pa.string())),
                "kind": pa.array(["gauge"] * ts.size),
                "ts": pa.array((ts * 1000).astype(np.int64)).cast(pa.timestamp("ms", tz="UTC")),
                "value": pa.array(vals),
            }))
    return pa.concat_tables(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--days", type=float, default=1.0)
    ap.add_argument("--interval", type=float, default=10.0)
    ap.add_argument("--slos", type=int, default=20)
    ap.add_argument("--no-week-before", dest="week_before", action="store_false",
                    help="skip loading the same span a week earlier (then week-over-week is n/a)")
    ap.add_argument("--out", default="bench/results/reports.json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wk-bench-reports-"))
    try:
        clickhouse_connect.get_client(dsn=f"chdb://{work}").command("CREATE DATABASE IF NOT EXISTS b")
        client = get_reader(f"chdb://{work}?database=b")
        for stmt in TABLES.read_text().split(";"):
            body = "\n".join(x for x in stmt.splitlines() if not x.strip().startswith("--")).strip()
            if body:
                client.command(body)
        began = time.perf_counter()
        rows = 0
        # The report range, and (for week-over-week) the same span a week earlier.
        for shift in (0.0, 7.0) if args.week_before else (0.0,):
            for table, ids, names, labels, vals, ts in build_chunks(args.series, args.days, args.interval, 100, shift):
                client.insert_arrow("samples", table)
                client.insert_arrow("aggregates", aggregates_table(ids, names, labels, vals, ts, 6))
                rows += table.num_rows
        client.insert_arrow("samples", sli_table(args.slos, args.days, 30.0))
        load_s = time.perf_counter() - began
        began = time.perf_counter()
        client.command("OPTIMIZE TABLE samples FINAL")
        client.command("OPTIMIZE TABLE aggregates FINAL")
        optimize_s = time.perf_counter() - began
        total_rows = client.query("SELECT count() FROM samples").result_rows[0][0]
        cols = dict(client.query(
            "SELECT name, data_compressed_bytes FROM system.columns WHERE database = 'b' AND table = 'samples'"
        ).result_rows)
        part_bytes = client.query(
            "SELECT sum(bytes_on_disk), sum(data_compressed_bytes), sum(data_uncompressed_bytes) FROM system.parts "
            "WHERE database = 'b' AND table = 'samples' AND active"
        ).result_rows[0]
        per_name = client.query(
            "SELECT name, count(), uniqExact(series_id) FROM samples GROUP BY name ORDER BY name"
        ).result_rows
        # Bytes per sample by data shape: each metric family copied into its own table and merged.
        families = {}
        for (name,) in client.query("SELECT DISTINCT name FROM samples ORDER BY name").result_rows:
            tbl = "fam_" + "".join(ch if ch.isalnum() else "_" for ch in name)
            client.command(f"CREATE TABLE {tbl} AS samples")
            client.command(f"INSERT INTO {tbl} SELECT * FROM samples WHERE name = {{n:String}}", parameters={"n": name})
            client.command(f"OPTIMIZE TABLE {tbl} FINAL")
            n_rows = client.query(f"SELECT count() FROM {tbl}").result_rows[0][0]
            fam_cols = dict(client.query(
                "SELECT name, data_compressed_bytes FROM system.columns WHERE database = 'b' AND table = {t:String}",
                parameters={"t": tbl},
            ).result_rows)
            per_sample = (fam_cols["ts"] + fam_cols["value"]) / n_rows
            families[name] = {"samples": int(n_rows), "bytes_per_sample_ts_value": per_sample}
            client.command(f"DROP TABLE {tbl}")
        tr = TimeRange(END - timedelta(days=args.days), END)
        timings = {}
        began = time.perf_counter()
        client.query("SELECT count(), sum(value) FROM samples FINAL")
        timings["baseline_full_final_scan_s"] = time.perf_counter() - began
        slo_range = TimeRange(END - timedelta(days=30), END)
        for label, fn in (
            ("slo_report_figures_s", lambda q: build_slo_report(q, slo_range, charts=False)),
            ("slo_report_with_charts_s", lambda q: build_slo_report(q, slo_range, charts=True)),
            ("trend_report_aggregates_figures_s", lambda q: build_trend_report(q, tr, [], "aggregates", charts=False)),
            ("trend_report_aggregates_with_charts_s", lambda q: build_trend_report(q, tr, [], "aggregates")),
            ("trend_report_samples_figures_s", lambda q: build_trend_report(q, tr, [], "samples", charts=False)),
        ):
            with QueryRunner(client, steps=50) as q:
                began = time.perf_counter()
                fn(q)
                timings[label] = time.perf_counter() - began
        ts_val = cols["ts"] + cols["value"]
        result = {
            "series": args.series, "days": args.days, "interval_s": args.interval, "slos": args.slos,
            "samples": int(total_rows), "metric_samples": rows, "load_s": load_s, "optimize_s": optimize_s,
            "load_rows_per_s": rows / load_s,
            "column_compressed_bytes": {k: int(v) for k, v in cols.items()},
            "bytes_on_disk": int(part_bytes[0]),
            "bytes_per_sample_ts_value": ts_val / total_rows,
            "bytes_per_sample_ts": cols["ts"] / total_rows, "bytes_per_sample_value": cols["value"] / total_rows,
            "bytes_per_sample_row": part_bytes[1] / total_rows,
            "bytes_per_sample_on_disk": part_bytes[0] / total_rows,
            "ratio_to_gorilla_1_37": (ts_val / total_rows) / GORILLA_BYTES_PER_SAMPLE,
            "ratio_to_raw_16_bytes": (ts_val / total_rows) / 16,
            "per_metric": [(n, int(c), int(s)) for n, c, s in per_name],
            "per_family": families,
            **timings,
            "slo_figures_vs_full_scan": timings["slo_report_figures_s"] / timings["baseline_full_final_scan_s"],
            "trend_samples_vs_full_scan": (
                timings["trend_report_samples_figures_s"] / timings["baseline_full_final_scan_s"]
            ),
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
