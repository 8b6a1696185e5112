"""`watchkeeper sql "SELECT ..."`: query ClickHouse (the running owner's endpoint, or the server)."""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.parse
import urllib.request

from watchkeeper.plumbing.broker import port_open
from watchkeeper.plumbing.config import Config, load_config
from watchkeeper.plumbing.errors import WatchkeeperError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sql", help="query ClickHouse",
        description="Run one SQL query against Watchkeeper's ClickHouse. On the embedded default it goes "
                    "through the read-only endpoint of the running `watchkeeper up`; with a server DSN "
                    "(clickhouse.dsn or WK_CLICKHOUSE_DSN) it goes to the server.",
        epilog='example: watchkeeper sql "SELECT name, count() FROM samples GROUP BY name"',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("query")
    p.add_argument("--format", help="ClickHouse output format (default: PrettyCompact on a terminal, "
                                    "else TabSeparated)")
    p.add_argument("--config", help="watchkeeper.yaml (default: ./watchkeeper.yaml if present)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    fmt = args.format or ("PrettyCompact" if sys.stdout.isatty() else "TabSeparated")
    sys.stdout.buffer.write(query(cfg, args.query, fmt))
    sys.stdout.flush()
    return 0


def query(cfg: Config, sql: str, fmt: str = "TabSeparated") -> bytes:
    if not cfg.embedded_clickhouse:
        import clickhouse_connect

        from watchkeeper.sinks.clickhouse_http import split_format

        sql, fmt = split_format(sql, fmt)
        client = clickhouse_connect.get_client(dsn=cfg.clickhouse_dsn)
        return bytes(client.raw_query(sql, fmt=fmt))
    if not port_open(cfg.clickhouse.http_host, cfg.clickhouse.http_port):
        raise WatchkeeperError(
            f"nothing serves ClickHouse at {cfg.clickhouse_query_url}: start `watchkeeper up` (or "
            "`watchkeeper sink clickhouse`), which owns the embedded chDB directory"
        )
    params = urllib.parse.urlencode({"default_format": fmt})
    req = urllib.request.Request(f"{cfg.clickhouse_query_url}/?{params}", data=sql.encode(), method="POST",
                                 headers=cfg.clickhouse_http_headers())
    try:
        with urllib.request.urlopen(req, timeout=300) as resp:
            return bytes(resp.read())
    except urllib.error.HTTPError as exc:
        raise WatchkeeperError(exc.read().decode(errors="replace").strip()) from None
