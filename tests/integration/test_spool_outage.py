"""Given producers sending through the spool and the broker down for 60 s (and the producer process restarted
while it is down), expect every sample to arrive in Kafka exactly once when the broker is back.

tansu keeps its log in memory, so the broker that comes back is a fresh one on the same port: what the first
broker acknowledged is read from it before it goes down, and the rest must come from the spool."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from producers.sender import BatchSender
from schemas.samples import SampleBatch, SeriesBlock
from watchkeeper.broker import free_port, start_broker
from watchkeeper.topics import ensure_topics

TOPIC = "outage.samples"
DOWN_SECONDS = float(os.environ.get("WK_OUTAGE_SECONDS", "60"))


def batch(seq: int) -> SampleBatch:
    return SampleBatch(source="outage-test", series=[SeriesBlock(name="seq", ts=[time.time()], values=[float(seq)])])


async def read_all(bootstrap: str, until: int, timeout: float) -> list[int]:
    """Every `seq` value on TOPIC, once `until` distinct values are there (or the timeout passes)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(TOPIC) or set()
        while not parts:
            await consumer.topics()
            parts = consumer.partitions_for_topic(TOPIC) or set()
        consumer.assign([TopicPartition(TOPIC, p) for p in parts])
        seen: list[int] = []
        deadline = time.monotonic() + timeout
        while len(set(seen)) < until and time.monotonic() < deadline:
            for recs in (await consumer.getmany(timeout_ms=200)).values():
                for rec in recs:
                    seen += [int(v) for s in orjson.loads(rec.value)["series"] for v in s["values"]]
        await asyncio.sleep(1.0)  # anything arriving late would be a duplicate: give it the chance to show
        for recs in (await consumer.getmany(timeout_ms=500)).values():
            for rec in recs:
                seen += [int(v) for s in orjson.loads(rec.value)["series"] for v in s["values"]]
        return seen
    finally:
        await consumer.stop()


@pytest.mark.slow
def test_broker_down_for_a_minute_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    spool_dir = tmp_path / "spool"
    spec = {TOPIC: 8}

    async def scenario() -> tuple[list[int], list[int], int, dict[str, object]]:
        seq = 0

        async def produce(sender: BatchSender, seconds: float) -> None:
            nonlocal seq
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                await sender.send(batch(seq))
                seq += 1
                await asyncio.sleep(0.05)

        first = start_broker("127.0.0.1", port, log_path=tmp_path / "broker1.log")
        await ensure_topics(bootstrap, spec)
        sender = BatchSender(bootstrap, TOPIC, spool_dir, self_metrics_seconds=0)
        await sender.start()
        await produce(sender, 3.0)
        while sender.spool.pending():
            await asyncio.sleep(0.05)
        before = await read_all(bootstrap, until=seq, timeout=30)
        first.terminate()
        first.wait(timeout=10)

        await produce(sender, DOWN_SECONDS / 2)  # broker down, producer running
        await sender.stop(timeout=1.0)  # the producer process restarts while the broker is still down
        assert sender.spool.pending() > 0
        sender = BatchSender(bootstrap, TOPIC, spool_dir, self_metrics_seconds=0)
        await sender.start()
        await produce(sender, DOWN_SECONDS / 2)

        second = start_broker("127.0.0.1", port, log_path=tmp_path / "broker2.log")
        try:
            await ensure_topics(bootstrap, spec)
            await produce(sender, 2.0)  # and still producing after it is back
            deadline = time.monotonic() + 60
            while sender.spool.pending() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            stats = sender.stats()
            print('drained', stats, flush=True)
            await asyncio.wait_for(sender.stop(), 30)
            print('stopped', flush=True)
            after = await read_all(bootstrap, until=seq - len(set(before)), timeout=30)
        finally:
            second.terminate()
            second.wait(timeout=10)
        return before, after, seq, stats

    before, after, total, stats = asyncio.run(scenario())
    got = sorted(before + after)
    assert len(got) == len(set(got)), f"duplicates: {len(got) - len(set(got))}"
    missing = sorted(set(range(total)) - set(got))
    assert not missing, f"{len(missing)} of {total} samples lost, first {missing[:10]} ({stats})"
    assert total > DOWN_SECONDS * 10, "the producer kept running while the broker was down"
    assert stats["dropped_points"] == {}
