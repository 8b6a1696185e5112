"""Known tansu 0.6.0 defects (DESIGN.md): these tests fail when the broker no longer has them, so a fixed
broker is noticed and the workarounds can be removed."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from plumbing.topics import ensure_topics


async def _end_offset_after_one_batch_of(bootstrap: str, n: int) -> tuple[int, int]:
    topic = f"defect-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, {topic: 1})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=200)
    await producer.start()
    batch = producer.create_batch()
    for i in range(n):
        batch.append(key=None, value=f"m{i}".encode(), timestamp=None)
    await (await producer.send_batch(batch, topic, partition=0))
    await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    end = (await consumer.end_offsets([tp]))[tp]
    got = 0
    while got < n:
        got += len((await consumer.getmany(tp, timeout_ms=1000)).get(tp, []))
    high_watermark = consumer.highwater(tp)
    await consumer.stop()
    return end, high_watermark


def test_tansu_list_offsets_latest_is_the_last_batch_base_plus_one(broker: str) -> None:
    """ListOffsets(latest) after one 5-record batch: Kafka says 5, tansu 0.6.0 says 1. The fetch's high
    watermark is right, which is the workaround Watchkeeper uses."""
    end, high_watermark = asyncio.run(_end_offset_after_one_batch_of(broker, 5))
    assert high_watermark == 5
    assert end == 1, (
        f"ListOffsets(latest) returned {end} (Kafka's answer is 5): the broker no longer has tansu's "
        "ListOffsets defect; remove the workarounds listed in DESIGN.md and this test"
    )
