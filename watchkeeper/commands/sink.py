"""`watchkeeper sink clickhouse|notify`: run one sink."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from watchkeeper.plumbing.config import Config, load_config
from watchkeeper.plumbing.log_filters import limit_reconnect_errors
from watchkeeper.plumbing.topics import ensure_topics, topic_plan
from watchkeeper.sinks.clickhouse_http import create_query_app, endpoint_options
from watchkeeper.sinks.clickhouse_sink import ClickHouse, ClickHouseSink, ClickHouseSinkSettings
from watchkeeper.sinks.readonly_queries import QueryLimits
from watchkeeper.supervisor import until_signalled

if TYPE_CHECKING:
    from watchkeeper.sinks.notify_sink import NotifySinkSettings

log = logging.getLogger("watchkeeper.sink")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sink", help="run a sink: clickhouse or notify",
        description="Run one sink. `clickhouse` stores samples, aggregates, alerts and deliveries; with the "
                    "embedded chDB default it also serves read-only ClickHouse HTTP on 127.0.0.1:8123.",
        epilog="examples:\n  watchkeeper sink clickhouse --config watchkeeper.yaml\n"
               "  watchkeeper sink notify --config watchkeeper.yaml   # needs notify.alertmanager_config",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("kind", choices=["clickhouse", "notify"])
    p.add_argument("--config", help="watchkeeper.yaml (default: ./watchkeeper.yaml if present)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    limit_reconnect_errors()
    cfg = load_config(args.config)
    if args.kind == "clickhouse":
        asyncio.run(until_signalled(run_clickhouse_sink, cfg))
        return 0
    from watchkeeper.sinks.notify_sink import open_sink, run_notify_sink

    settings = notify_sink_settings(cfg)
    open_sink(settings)  # a broken Alertmanager file fails here, before anything starts, naming file and line
    asyncio.run(until_signalled(run_notify_sink, settings))
    return 0


def clickhouse_sink_settings(cfg: Config) -> ClickHouseSinkSettings:
    """What the ClickHouse sink reads of `cfg`."""
    return ClickHouseSinkSettings(kafka=cfg.kafka, group_id=f"{cfg.worker.app_id}-clickhouse",
                                  batch_rows=cfg.clickhouse.batch_rows, flush_seconds=cfg.clickhouse.flush_seconds)


def notify_sink_settings(cfg: Config) -> NotifySinkSettings:
    """What the notification sink reads of `cfg`."""
    from watchkeeper.sinks.notify_sink import NotifySinkSettings

    am = cfg.notify.alertmanager_config
    return NotifySinkSettings(kafka=cfg.kafka, group_id=f"{cfg.worker.app_id}-notify", notify=cfg.notify,
                              alertmanager_file=cfg.resolve(am) if am else None, data_path=cfg.data_path,
                              samples_dsn=cfg.clickhouse_reader_dsn)


def query_limits(cfg: Config) -> QueryLimits:
    c = cfg.clickhouse
    return QueryLimits(max_execution_time=c.query_max_execution_time, max_memory_usage=c.query_max_memory_usage,
                       max_result_rows=c.query_max_result_rows, max_result_bytes=c.query_max_result_bytes,
                       readers=c.query_readers)


async def serve_query_endpoint(cfg: Config, ch: ClickHouse) -> web.AppRunner:
    """Serve the read-only ClickHouse HTTP endpoint of `ch` on clickhouse.http_host:http_port."""
    options = endpoint_options(cfg.clickhouse)
    options.check_exposure()
    runner = web.AppRunner(create_query_app(ch.query, options), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, options.host, options.port).start()
    log.info("read-only ClickHouse HTTP on %s", cfg.clickhouse_query_url)
    return runner


async def run_clickhouse_sink(cfg: Config, stop: asyncio.Event) -> None:
    """Run the sink (and, on embedded chDB, the read-only query endpoint) until `stop` is set."""
    if cfg.embedded_clickhouse:
        endpoint_options(cfg.clickhouse).check_exposure()  # before anything starts
    await ensure_topics(cfg.kafka.bootstrap, topic_plan(cfg.kafka.topics))
    cfg.data_path.mkdir(parents=True, exist_ok=True)
    ch = ClickHouse(cfg.clickhouse_dsn, cfg.clickhouse.samples_ttl_days, query_limits(cfg))
    await ch.open()
    runner: web.AppRunner | None = None
    sink = ClickHouseSink(clickhouse_sink_settings(cfg), ch)
    try:
        if cfg.embedded_clickhouse:
            runner = await serve_query_endpoint(cfg, ch)
        await sink.run(stop)
    finally:
        if runner is not None:
            with contextlib.suppress(Exception):
                await runner.cleanup()
        await ch.close()
