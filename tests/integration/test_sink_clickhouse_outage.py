"""A ClickHouse insert that fails loses nothing: the sink counts the error, keeps the rows, retries, and
commits the Kafka offsets only once they are in.

The failure is real: the sink's `alerts` table is renamed away under it in the same embedded ClickHouse
(chDB), so the insert fails with ClickHouse's own "table does not exist" error until it is renamed back.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaProducer

from watchkeeper.commands.sink import clickhouse_sink_settings
from watchkeeper.plumbing.config import Config
from watchkeeper.plumbing.self_metrics import REGISTRY
from watchkeeper.schemas import AlertEvent, encode


def _errors() -> float:
    return REGISTRY.get_sample_value("watchkeeper_sink_errors_total", {"sink": "clickhouse"}) or 0.0


async def _wait_for(check: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.2)
    return False


async def test_failed_inserts_are_counted_retried_and_lose_nothing(wk_config: Config, ch_dsn: str) -> None:
    from watchkeeper.sinks import clickhouse_sink as sinks
    wk_config.clickhouse.dsn = ch_dsn
    wk_config.clickhouse.flush_seconds = 0.3
    ch = sinks.ClickHouse(ch_dsn)
    await ch.open()
    await ch._run(ch.writer.command, "RENAME TABLE alerts TO alerts_away")
    sink = sinks.ClickHouseSink(clickhouse_sink_settings(wk_config), ch)
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(stop))
    producer = AIOKafkaProducer(bootstrap_servers=wk_config.kafka.bootstrap)
    await producer.start()
    errors_before = _errors()
    try:
        now = time.time()
        for i in range(5):
            event = AlertEvent(fingerprint=f"{i:016x}", rule="OutageTest", state="firing", severity="high",
                               labels={"alertname": "OutageTest", "i": str(i)}, annotations={}, value=float(i),
                               starts_at=now - 60, event_time=now + i)
            await producer.send_and_wait(wk_config.kafka.topics.alerts, encode(event), key=event.fingerprint.encode())

        async def failing() -> bool:
            return sink.stats.errors >= 1

        assert await _wait_for(failing, 30), "the insert into a missing table never failed"
        assert _errors() >= errors_before + 1  # visible on /metrics as watchkeeper_sink_errors_total
        assert sink.stats.rows["alerts"] == 0

        await ch._run(ch.writer.command, "RENAME TABLE alerts_away TO alerts")

        async def stored() -> bool:
            return sink.stats.rows["alerts"] >= 5

        assert await _wait_for(stored, 30), f"rows never arrived after the table came back: {sink.stats}"
        count = await ch._run(ch.writer.command, "SELECT count() FROM alerts WHERE rule = 'OutageTest'")
        assert int(count) == 5  # every row once: kept across the retries, none doubled
        assert sink.stats.rows["alerts"] == 5
    finally:
        await producer.stop()
        stop.set()
        await asyncio.wait_for(task, timeout=30)
        await ch.close()
