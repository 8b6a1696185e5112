"""Test-side Kafka helpers: produce raw messages, read a topic from the beginning until a condition."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord, TopicPartition


async def produce(bootstrap: str, topic: str, messages: Sequence[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def consume_until(
    bootstrap: str, topic: str, done: Callable[[list[ConsumerRecord]], bool], timeout: float = 60.0
) -> list[ConsumerRecord]:
    """All records of `topic` from the beginning, once `done(records)` holds (or the timeout passes).

    Every partition is assigned and read from offset 0 explicitly: a reader left to reset its position
    itself asks the broker for the earliest offset, and tansu, appended to meanwhile, can answer past the
    first records (a whole early run of alerts went unseen that way)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout
    try:
        parts = consumer.partitions_for_topic(topic)
        while not parts and time.monotonic() < deadline:
            await consumer.topics()
            parts = consumer.partitions_for_topic(topic)
            if not parts:
                await asyncio.sleep(0.2)
        tps = [TopicPartition(topic, p) for p in sorted(parts or ())]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        while time.monotonic() < deadline and not done(records):
            for recs in (await consumer.getmany(timeout_ms=300)).values():
                records.extend(recs)
    finally:
        await consumer.stop()
    return records


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]
