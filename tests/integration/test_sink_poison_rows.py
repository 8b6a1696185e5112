"""One bad row neither kills the ClickHouse sink nor stalls it: good rows mixed with poison rows on the
aggregates and alerts topics all arrive once, every poison row lands on the dead-letter topic once with a
reason naming what is wrong, and rows sent afterwards are still stored.

The poison is of two kinds, each taking a different path through the sink: rows of the wrong type
(rejected on the way in, before they are buffered), and rows ClickHouse itself rejects (a real CHECK
constraint added to the `alerts` table: found by inserting the batch in halves), including one that
arrives alone in its flush. (Rows the Arrow builder cannot take are rejected on the way in; the row-by-row
fallback behind that is tested with the real builders in tests/unit/test_sink_poison_units.py.)
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from tests.integration.kafka_io import consume_until, produce
from watchkeeper.commands.sink import clickhouse_sink_settings
from watchkeeper.plumbing.config import Config
from watchkeeper.schemas import AlertEvent, DeadLetter, WindowAggregate, decode, encode, series_id

REJECTED_RULE = "RejectedByClickHouse"


def _aggregate(i: int, t0: float) -> dict[str, Any]:
    labels = {"job": "poison-test", "i": str(i)}
    agg = WindowAggregate(series_id=f"{series_id('m', labels):016x}", name="m", labels=labels, start=t0 + 10 * i,
                          end=t0 + 10 * i + 10, count=3, sum=6.0, min=1.0, max=3.0, last=2.0, p50=2.0, p90=3.0,
                          p95=3.0, p99=3.0, sketch={"keys": [0], "counts": [3]})
    return agg.model_dump(mode="json")


def _alert(i: int, t0: float, rule: str = "PoisonTest") -> dict[str, Any]:
    ev = AlertEvent(fingerprint=f"{i:016x}", rule=rule, state="firing", labels={"i": str(i)},
                    starts_at=t0, event_time=t0 + i)
    return ev.model_dump(mode="json")


async def _wait_for(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.2)
    return False


async def test_poison_rows_are_dead_lettered_and_the_sink_goes_on(wk_config: Config, ch_dsn: str) -> None:
    from watchkeeper.sinks import clickhouse_sink as sinks
    topics = wk_config.kafka.topics
    wk_config.clickhouse.dsn = ch_dsn
    wk_config.clickhouse.flush_seconds = 0.5
    ch = sinks.ClickHouse(ch_dsn)
    await ch.open()
    await ch._run(ch.writer.command, f"ALTER TABLE alerts ADD CONSTRAINT not_rejected CHECK rule != '{REJECTED_RULE}'")
    sink = sinks.ClickHouseSink(clickhouse_sink_settings(wk_config), ch)
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(stop))

    async def count(sql: str) -> int:
        return int(await ch._run(ch.writer.command, sql))

    t0 = 1_790_000_000.0
    good_aggs = [_aggregate(i, t0) for i in range(12)]
    good_alerts = [_alert(i, t0) for i in range(12)]
    # (message, the text its dead-letter reason must contain)
    poison_aggs: list[tuple[dict[str, Any], str]] = [
        ({**_aggregate(100, t0), "count": "x"}, "count"),
        ({**_aggregate(101, t0), "labels": [1]}, "labels"),
        ({**_aggregate(102, t0), "start": "yesterday"}, "start"),
        ({**_aggregate(103, t0), "series_id": "not-hex"}, "series_id"),
        ({**_aggregate(104, t0), "count": -1}, "count"),  # valid for the model, not for UInt64
        ({**_aggregate(105, t0), "sketch": {"keys": ["a"]}}, "sketch.keys.0"),
    ]
    poison_alerts: list[tuple[dict[str, Any], str]] = [
        ({**_alert(100, t0), "state": 5}, "state"),
        ({**_alert(101, t0), "starts_at": "x"}, "starts_at"),
        ({**_alert(102, t0), "labels": {"a": 1}}, "labels.a"),
        (_alert(103, t0, rule=REJECTED_RULE), "not_rejected"),  # ClickHouse's constraint names itself
    ]
    try:
        aggs = [(None, orjson.dumps(a)) for a in good_aggs[:6]] + [(None, orjson.dumps(p)) for p, _ in poison_aggs]
        aggs += [(None, orjson.dumps(a)) for a in good_aggs[6:]]
        alerts = [(None, orjson.dumps(a)) for a in good_alerts[:6]]
        alerts += [(None, orjson.dumps(p)) for p, _ in poison_alerts]
        alerts += [(None, orjson.dumps(a)) for a in good_alerts[6:]]
        await produce(wk_config.kafka.bootstrap, topics.aggregates, aggs)
        await produce(wk_config.kafka.bootstrap, topics.alerts, alerts)

        async def stored_first() -> bool:
            return (sink.stats.rows["aggregates"] >= 12 and sink.stats.rows["alerts"] >= 12) or task.done()

        assert await _wait_for(stored_first, 60), f"good rows never arrived: {sink.stats}"
        assert not task.done(), f"the sink died: {task.exception()!r}"

        # A row ClickHouse rejects, alone in its flush: nothing else succeeds, yet it must not stall the sink.
        lone = AlertEvent(**_alert(200, t0, REJECTED_RULE))
        await produce(wk_config.kafka.bootstrap, topics.alerts, [(None, encode(lone))])
        await asyncio.sleep(1.5)  # let it be flushed on its own
        later = [_alert(i, t0 + 1000) for i in range(300, 303)]
        await produce(wk_config.kafka.bootstrap, topics.alerts, [(None, orjson.dumps(a)) for a in later])
        await produce(wk_config.kafka.bootstrap, topics.aggregates, [(None, orjson.dumps(_aggregate(300, t0)))])

        async def stored_later() -> bool:
            return (sink.stats.rows["alerts"] >= 15 and sink.stats.rows["aggregates"] >= 13) or task.done()

        assert await _wait_for(stored_later, 60), f"rows after the poison never arrived: {sink.stats}"
        assert not task.done(), f"the sink died: {task.exception()!r}"

        expected_dead = len(poison_aggs) + len(poison_alerts) + 1
        records = await consume_until(wk_config.kafka.bootstrap, topics.deadletter,
                                      lambda recs: len(recs) >= expected_dead, timeout=30)
        await asyncio.sleep(1.0)
        records = await consume_until(wk_config.kafka.bootstrap, topics.deadletter,
                                      lambda recs: len(recs) >= expected_dead, timeout=5)
        dead = [decode(r.value, DeadLetter) for r in records]
        assert len(dead) == expected_dead, [d.reason for d in dead]  # each once
        by_original = {d.original_bytes(): d for d in dead}
        for message, field in poison_aggs:
            d = by_original[orjson.dumps(message)]
            assert d.topic == topics.aggregates and field in d.reason, d.reason
        for message, field in poison_alerts:
            d = by_original[orjson.dumps(message)]
            assert d.topic == topics.alerts and field in d.reason, d.reason
        lone_dead = [d for d in dead if d.original_bytes() == encode(lone)]
        assert len(lone_dead) == 1 and "not_rejected" in lone_dead[0].reason, [d.reason for d in dead]
        assert all(d.reason.startswith("clickhouse sink: ") for d in dead)

        assert await count("SELECT count() FROM aggregates WHERE labels['job'] = 'poison-test'") == 13
        assert await count("SELECT count() FROM alerts") == 15  # every good row once
        assert await count(f"SELECT count() FROM alerts WHERE rule = '{REJECTED_RULE}'") == 0
        assert sink.stats.rows == {"samples": 0, "aggregates": 13, "alerts": 15, "notifications": 0}
        assert sink.stats.bad_messages == expected_dead
    finally:
        stop.set()
        if not task.done():
            await asyncio.wait_for(task, timeout=30)
        await ch.close()
