"""Backtest replay speed: 2,000 series at 10 s resolution, 100 rules, one day of stored history.

Two steps in two processes, so the replay's peak RSS is its own:
1. `generate`: the day (plus the rules' history before it) written into a chDB directory's `samples`
   table, an hour per insert (the bench/rules/engine_tick.py workload: 10 metric families x 200 series,
   half counters, half gauges, and its 100 rules: rates, ratios, aggregations, thresholds with `for`).
2. `replay`: `reports.backtest_report.run_backtest` over the day, what `watchkeeper rules backtest`
   runs, reading the chDB directory directly (the CLI reads through the owner's HTTP endpoint instead).

Reported: wall seconds of the replay, event time replayed per wall second (x real time), the same per
CPU second of the replaying process (steadier on a shared machine), samples per second, peak RSS of the
replaying process, alerts found.

Run: PYTHONPATH=. python bench/backtest/replay_speed.py [--series 2000] [--rules 100] [--hours 24]
     [--interval 60s] [--json bench/backtest/results.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench.rules.engine_tick import rule_file, series_labels

STEP = 10.0
_TS = pa.timestamp("ms", tz="UTC")
T0 = 1_796_000_400.0  # on the hour (a recent date: the samples table has a TTL)


def generate(chdb_dir: str, n_series: int, hours: float, history: float) -> int:
    import clickhouse_connect

    from watchkeeper.schemas.series_id import series_id
    from watchkeeper.sinks.clickhouse_schema import create_tables

    client = clickhouse_connect.get_client(dsn=f"chdb://{chdb_dir}")
    create_tables(client, samples_ttl_days=3650)
    series = series_labels(n_series)
    ids = np.array([series_id(n, lab) for n, lab, _ in series], dtype=np.uint64)
    rng = np.random.default_rng(1)
    rows = 0
    start, end = T0 - history, T0 + hours * 3600
    a = start
    while a < end:
        b = min(end, a + 3600)
        ts = np.arange(a, b, STEP)
        k = len(ts)
        all_ts = np.tile(ts, len(series))
        values = np.empty(len(series) * k)
        for j, (_, _, counter) in enumerate(series):
            if counter:
                values[j * k:(j + 1) * k] = (ts - start) * (1 + j % 7) * 10.0
            else:
                values[j * k:(j + 1) * k] = 50 + 45 * np.sin((ts - T0) / 600 + j) + rng.normal(0, 1, k)
        per_series = pa.table({
            "series_id": pa.array(ids, type=pa.uint64()),
            "name": pa.array([n for n, _, _ in series], type=pa.string()),
            "labels": pa.array([sorted(lab.items()) for _, lab, _ in series], type=pa.map_(pa.string(), pa.string())),
            "kind": pa.array(["counter" if c else "gauge" for _, _, c in series], type=pa.string()),
        })
        table = (per_series.take(pa.array(np.repeat(np.arange(len(series)), k)))
                 .append_column("ts", pa.array(np.round(all_ts * 1000).astype(np.int64)).cast(_TS))
                 .append_column("value", pa.array(values, type=pa.float64())))
        client.insert_arrow("samples", table)
        rows += table.num_rows
        a = b
    return rows


def replay(chdb_dir: str, rules_path: str, hours: float) -> dict[str, float]:
    import clickhouse_connect

    from watchkeeper.agents.rules_wiring import loaded_rules
    from watchkeeper.core.rules.loader import load_rule_files
    from watchkeeper.reports.backtest_report import run_backtest

    client = clickhouse_connect.get_client(dsn=f"chdb://{chdb_dir}")
    loaded = loaded_rules(load_rule_files([rules_path]), 8, 5.0)
    began, cpu = time.perf_counter(), time.process_time()
    result = run_backtest(client, loaded, T0, T0 + hours * 3600, 5.0, warmup=0.0)
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    return {
        "replay_seconds": wall, "replay_loop_seconds": result.elapsed,
        # CPU seconds of this process (every thread): what the replay costs, whatever else the machine runs
        "replay_cpu_seconds": cpu, "x_real_time_cpu": hours * 3600 / cpu,
        "x_real_time": hours * 3600 / wall, "samples": result.samples,
        "samples_per_second": result.samples / wall, "series": result.series,
        "alerts": len(result.events), "errors": len(result.errors),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", nargs="?", choices=["all", "generate", "replay"], default="all")
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--rules", type=int, default=100)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--interval", default="60s", help="rule group interval (Prometheus' default 1m)")
    ap.add_argument("--dir", help="chDB directory (default: a temporary one)")
    ap.add_argument("--json", help="append the numbers to this file")
    args = ap.parse_args()
    if args.step == "generate":
        print(generate(args.dir, args.series, args.hours, history=1200.0))
        return
    if args.step == "replay":
        rules = Path(args.dir) / "bench.rules.yml"
        rules.write_text(rule_file(args.rules).replace("interval: 30s", f"interval: {args.interval}"))
        print(json.dumps(replay(args.dir, str(rules), args.hours)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        d = args.dir or tmp
        me = [sys.executable, __file__, "--dir", d, "--series", str(args.series), "--rules", str(args.rules),
              "--hours", str(args.hours), "--interval", args.interval]
        began = time.perf_counter()
        rows = int(subprocess.run([*me, "generate"], check=True, capture_output=True, text=True).stdout.split()[-1])
        gen = time.perf_counter() - began
        out = subprocess.run([*me, "replay"], check=True, capture_output=True, text=True).stdout
        result = {"series": args.series, "rules": args.rules, "hours": args.hours, "interval": args.interval,
                  "rows_stored": rows, "generate_seconds": gen, **json.loads(out.splitlines()[-1])}
    for k, v in result.items():
        print(f"{k:>20}: {v:,.2f}" if isinstance(v, float) else f"{k:>20}: {v}")
    if args.json:
        path = Path(args.json)
        runs = json.loads(path.read_text()) if path.exists() else []
        path.write_text(json.dumps([*runs, result], indent=1) + "\n")


if __name__ == "__main__":
    main()
