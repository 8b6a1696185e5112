"""`watchkeeper demo load`: a synthetic week with one incident written into ClickHouse, so that
`watchkeeper rules backtest` has history to replay on a fresh machine (see `producers.demo_history`).

It writes with the ClickHouse sink's own code path (`create_tables`, one columnar insert per day). In the
embedded default only one process may open the chDB directory, so run it while `watchkeeper up` is
stopped; against a ClickHouse server (`clickhouse.dsn`) it runs at any time.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pyarrow as pa

from watchkeeper.plumbing.config import load_config
from watchkeeper.plumbing.errors import WatchkeeperError
from watchkeeper.producers.demo_history import demo_history, incidents
from watchkeeper.schemas.series_id import series_id

_TS = pa.timestamp("ms", tz="UTC")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="load demo history (a synthetic week with one incident) into ClickHouse",
        description="Write a synthetic week of a small web service, with one incident, into the samples table.",
        epilog="example (with watchkeeper up stopped):\n  watchkeeper demo load\n  watchkeeper up   # then, "
               "from another terminal:\n  watchkeeper rules backtest examples/rules/demo.rules.yml --from -7d",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="demo_action", metavar="ACTION", required=True)
    load = actions.add_parser("load", help="write the demo week (ending now) into ClickHouse")
    load.add_argument("--days", type=int, default=7)
    load.add_argument("--config", help="watchkeeper.yaml (default ./watchkeeper.yaml if present)")
    load.set_defaults(func=_load)


def _load(args: argparse.Namespace) -> int:
    import clickhouse_connect

    from watchkeeper.sinks.clickhouse_schema import create_tables

    cfg = load_config(args.config)
    dsn = cfg.clickhouse_dsn
    try:
        client = clickhouse_connect.get_client(dsn=dsn)
        create_tables(client, cfg.clickhouse.samples_ttl_days)
    except Exception as exc:
        hint = (" Stop `watchkeeper up` first: it owns the embedded ClickHouse directory while it runs."
                if cfg.embedded_clickhouse else "")
        raise WatchkeeperError(f"demo load: cannot open ClickHouse for writing: {exc}.{hint}") from None
    end = time.time() // 10 * 10
    rows = 0
    for chunk in demo_history(end, args.days):
        client.insert_arrow("samples", _table(chunk))
        rows += sum(len(ts) for *_, ts, _ in chunk)
        print(f"demo load: {rows:,} samples written", file=sys.stderr)
    inc = incidents(end)[0]
    at = time.strftime("%Y-%m-%d %H:%M", time.gmtime(inc.start))
    print(f"demo load: {rows:,} samples of demo_http_requests_total, demo_request_latency_p95_seconds and "
          f"demo_cpu_usage_percent over {args.days} days; incident at {at} "
          "UTC for 40 min")
    return 0


def _table(chunk: list[tuple[str, dict[str, str], str, np.ndarray, np.ndarray]]) -> pa.Table:
    n = [len(ts) for *_, ts, _ in chunk]
    take = pa.array(np.repeat(np.arange(len(chunk)), n))
    per_series = pa.table({
        "series_id": pa.array([series_id(name, labels) for name, labels, *_ in chunk], type=pa.uint64()),
        "name": pa.array([name for name, *_ in chunk], type=pa.string()),
        "labels": pa.array([sorted(labels.items()) for _, labels, *_ in chunk], type=pa.map_(pa.string(), pa.string())),
        "kind": pa.array([kind for _, _, kind, *_ in chunk], type=pa.string()),
    }).take(take)
    ts = np.concatenate([ts for *_, ts, _ in chunk])
    values = np.concatenate([v for *_, v in chunk])
    return (per_series.append_column("ts", pa.array(np.round(ts * 1000).astype(np.int64)).cast(_TS))
            .append_column("value", pa.array(values, type=pa.float64())))
