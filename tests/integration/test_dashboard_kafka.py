"""A firing alert sent through Kafka shows on the dashboard within seconds, in a real headless Chromium.

The whole path is real: an `AlertEvent` on the alerts topic of the session's tansu broker, the ClickHouse sink
consuming it into chDB, the dashboard reading the `alerts` table, Chromium rendering the page.
"""

from __future__ import annotations

import asyncio
import re
import time

import aiohttp
import pytest
from aiohttp import web
from aiokafka import AIOKafkaProducer

from tests.integration.test_dashboard_browser import CHROMIUM, _chromium
from watchkeeper.commands.dashboard import dashboard_settings
from watchkeeper.commands.sink import clickhouse_sink_settings
from watchkeeper.dashboard import create_dashboard_app
from watchkeeper.plumbing.broker import free_port
from watchkeeper.plumbing.config import Config
from watchkeeper.schemas import AlertEvent, encode

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed (apt-get install chromium)")


async def test_alert_through_kafka_reaches_the_dashboard(wk_config: Config, ch_dsn: str) -> None:
    from watchkeeper.sinks import clickhouse_sink as sinks
    wk_config.clickhouse.dsn = ch_dsn
    wk_config.clickhouse.flush_seconds = 0.5
    ch = sinks.ClickHouse(ch_dsn)
    await ch.open()
    sink = sinks.ClickHouseSink(clickhouse_sink_settings(wk_config), ch)
    stop = asyncio.Event()
    sink_task = asyncio.create_task(sink.run(stop))
    runner = web.AppRunner(create_dashboard_app(dashboard_settings(wk_config, ch_dsn)))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    producer = AIOKafkaProducer(bootstrap_servers=wk_config.kafka.bootstrap)
    await producer.start()
    try:
        now = time.time()
        event = AlertEvent(
            fingerprint="0123456789abcdef", rule="KafkaPathAlert", state="firing", severity="critical",
            labels={"alertname": "KafkaPathAlert", "instance": "db-7:9100"},
            annotations={"summary": "sent through Kafka"}, value=42.0, starts_at=now - 90, event_time=now,
        )
        sent = time.monotonic()
        await producer.send_and_wait(wk_config.kafka.topics.alerts, encode(event), key=event.fingerprint.encode())
        async with aiohttp.ClientSession() as http:
            while time.monotonic() - sent < 30:
                async with http.get(f"http://127.0.0.1:{port}/api/overview") as r:
                    alerts = (await r.json())["alerts"]
                if alerts:
                    break
                await asyncio.sleep(0.25)
        seen_after = time.monotonic() - sent
        print(f"alert on the dashboard {seen_after:.2f} s after it was sent to Kafka")
        assert [a["rule"] for a in alerts] == ["KafkaPathAlert"], "the alert never reached the dashboard"
        assert seen_after < 15, f"took {seen_after:.1f} s"
        dom = (await _chromium("--dump-dom", f"http://127.0.0.1:{port}/")).decode()
        assert 'class="pill firing">firing<' in dom and "KafkaPathAlert" in dom and "instance=db-7:9100" in dom
        assert "sent through Kafka" in dom
        assert re.search(r'<td title="since [^"]+">1m \d+s</td>', dom)  # started 90 s before it was sent
    finally:
        await producer.stop()
        stop.set()
        await asyncio.wait_for(sink_task, timeout=30)
        await ch.close()
        await runner.cleanup()
