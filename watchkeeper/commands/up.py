"""`watchkeeper up`: everything on one machine on the embedded defaults."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
import urllib.parse
import urllib.request
from pathlib import Path

from rich.console import Console

from watchkeeper.plumbing.broker import port_open, start_broker
from watchkeeper.plumbing.config import Config, load_config
from watchkeeper.plumbing.http_guard import check_listener
from watchkeeper.plumbing.self_metrics import MULTIPROC_ENV, prepare_multiproc_dir
from watchkeeper.plumbing.topics import ensure_topics, topic_plan
from watchkeeper.supervisor import Component, Supervisor, watchkeeper_argv


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "up", help="run everything on this machine (broker, worker, sinks, producers, dashboard)",
        description="Start the dev broker (tansu), create the topics, then run the Faust worker, the "
                    "ClickHouse sink on embedded chDB (with read-only ClickHouse HTTP on 127.0.0.1:8123), "
                    "the notification sink, the system producer for this host and the dashboard. "
                    "Ctrl-C stops everything.",
        epilog="example: watchkeeper up\n         watchkeeper up --config watchkeeper.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", help="watchkeeper.yaml (default: ./watchkeeper.yaml if present)")
    p.add_argument("--no-broker", action="store_true", help="use the broker at kafka.bootstrap instead")
    p.add_argument("--loglevel", default="warning", choices=["debug", "info", "warning", "error"],
                   help="log level of the worker (logs are in <data_dir>/logs)")
    p.set_defaults(func=run)


def components(cfg: Config, config_args: list[str], loglevel: str = "warning") -> list[tuple[str, list[str]]]:
    """What `up` runs, in start order."""
    parts = [
        ("clickhouse-sink", watchkeeper_argv("sink", "clickhouse", *config_args)),
        ("worker", watchkeeper_argv("worker", "--loglevel", loglevel, *config_args)),
        ("notify-sink", watchkeeper_argv("sink", "notify", *config_args)),
        ("dashboard", watchkeeper_argv("dashboard", *config_args)),
    ]
    from watchkeeper.producers.runner import enabled_kinds

    kinds = enabled_kinds(cfg.producers)
    if kinds:
        parts.append(("producers", watchkeeper_argv("produce", *kinds, *config_args)))
    return parts


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    cfg = load_config(args.config)
    # An open listener is refused here, before anything starts, rather than by a child restarted in a loop.
    check_listener("dashboard", cfg.dashboard.host, cfg.dashboard.token, "WK_DASHBOARD_TOKEN")
    if cfg.producers.push.enabled:
        check_listener("producers.push", cfg.producers.push.host, cfg.producers.push.token, "WK_PUSH_TOKEN")
    if cfg.embedded_clickhouse:
        from watchkeeper.sinks.clickhouse_http import endpoint_options

        endpoint_options(cfg.clickhouse).check_exposure()  # refuse an open endpoint before anything starts
    config_args = ["--config", str(Path(args.config).resolve())] if args.config else []
    logs = cfg.data_path / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    broker = None
    # Every child writes its self-metrics to files here; the dashboard's /metrics reads them all.
    metrics_dir = prepare_multiproc_dir(cfg.data_path / "metrics")
    child_env = {**os.environ, MULTIPROC_ENV: str(metrics_dir)}
    sup = Supervisor(metrics_dir=metrics_dir)
    try:
        if not args.no_broker:
            host, port = cfg.kafka.bootstrap.rsplit(":", 1)
            with console.status("starting the dev broker (tansu)…"):
                broker = start_broker(host, int(port), log_path=logs / "broker.log")
            console.print(f"[green]✓[/] broker     kafka://{cfg.kafka.bootstrap} (tansu, in memory)")
        asyncio.run(ensure_topics(cfg.kafka.bootstrap, topic_plan(cfg.kafka.topics)))
        console.print(f"[green]✓[/] topics     {', '.join(topic_plan(cfg.kafka.topics))}")
        t0 = time.monotonic()
        for name, argv in components(cfg, config_args, args.loglevel):
            sup.add(Component(name, argv, logs / f"{name}.log", env=child_env))
            console.print(f"[green]✓[/] {name:<10} started (log: {logs / (name + '.log')})")
        if cfg.embedded_clickhouse:
            console.print(f"  ClickHouse  {cfg.clickhouse_query_url}/?query=SELECT+1  "
                          f"(embedded chDB in {cfg.clickhouse_dsn[len('chdb://'):]})")
        if any(c.name == "dashboard" for c in sup.components):
            console.print(f"  dashboard   http://{cfg.dashboard.host}:{cfg.dashboard.port}/")
        console.print("  Ctrl-C stops everything.")
        first_row = False
        while not stopping:
            time.sleep(0.5)
            for note in sup.check():
                console.print(f"[yellow]![/] {note}")
            if broker is not None and broker.poll() is not None:
                console.print(f"[red]✗[/] the broker exited (code {broker.returncode}); stopping")
                break
            if not first_row and _aggregate_rows(cfg) > 0:
                first_row = True
                console.print(f"[green]✓[/] first aggregate row in ClickHouse after "
                              f"{time.monotonic() - t0:.1f} s")
    finally:
        console.print("stopping…")
        sup.stop()
        if broker is not None:
            broker.terminate()
            try:
                broker.wait(timeout=10)
            except Exception:
                broker.kill()
        console.print("stopped.")
    return 0


def _aggregate_rows(cfg: Config) -> int:
    url = cfg.clickhouse_query_url
    if not cfg.embedded_clickhouse:
        return 1  # only reported for the embedded default
    host, port = cfg.clickhouse.http_host, cfg.clickhouse.http_port
    if not port_open(host, port):
        return 0
    q = urllib.parse.urlencode({"query": "SELECT count() FROM aggregates"})
    try:
        req = urllib.request.Request(f"{url}/?{q}", headers=cfg.clickhouse_http_headers())
        with urllib.request.urlopen(req, timeout=2) as resp:
            return int(resp.read().strip() or 0)
    except (TimeoutError, OSError, ValueError):
        return 0
