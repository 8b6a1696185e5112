"""`watchkeeper dashboard`: serve the web dashboard (status, alerts, silences, SLOs, charts, /metrics)."""

from __future__ import annotations

import argparse

from aiohttp import web

from watchkeeper.core.secrets import mask_dsn
from watchkeeper.dashboard import DashboardSettings, create_dashboard_app
from watchkeeper.dashboard.silences import store_silence_provider
from watchkeeper.plumbing.config import Config, load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dashboard",
        help="the web dashboard",
        description="Serve the dashboard; it reads ClickHouse (the embedded owner's query endpoint by default).",
        epilog="example: watchkeeper dashboard --port 8080     (then open http://127.0.0.1:8080/)\n"
               "off loopback: WK_DASHBOARD_TOKEN=$(openssl rand -hex 32) watchkeeper dashboard --host 0.0.0.0",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="watchkeeper.yaml (default ./watchkeeper.yaml if present)")
    parser.add_argument("--host", help="listen address (default: dashboard.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (default: dashboard.port, 8080)")
    # No --token: a token on the command line is visible to every user in `ps`; use WK_DASHBOARD_TOKEN.
    parser.add_argument("--dsn", help="ClickHouse to read (default: the config's query URL)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    host = cfg.dashboard.host = args.host or cfg.dashboard.host
    port = args.port or cfg.dashboard.port
    # Silences come from the store `watchkeeper silence` writes (the notification sink reads the same file).
    app = create_dashboard_app(dashboard_settings(cfg, args.dsn), silences=store_silence_provider(cfg.data_path))
    login = " (token required: basic auth, or ?token= once)" if cfg.dashboard.token else ""
    print(f"dashboard on http://{host}:{port}/{login} reading {mask_dsn(args.dsn or cfg.clickhouse_query_url)}")
    web.run_app(app, host=host, port=port, print=None)
    return 0


def dashboard_settings(cfg: Config, dsn: str | None = None) -> DashboardSettings:
    """What the dashboard reads of `cfg`; `dsn` (default: `cfg.clickhouse_reader_dsn`) is the ClickHouse it reads."""
    return DashboardSettings(dashboard=cfg.dashboard, reader_dsn=dsn or cfg.clickhouse_reader_dsn,
                             data_path=cfg.data_path)
