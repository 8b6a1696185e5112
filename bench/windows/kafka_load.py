"""Load messages into explicit partitions fast (one producer batch per ~1 MB), and read a topic back."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord, TopicPartition


async def load(bootstrap: str, topic: str, messages: dict[int, list[tuple[bytes, bytes]]]) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=1_000_000, linger_ms=50,
                                max_request_size=8_000_000)
    await producer.start()
    sent = 0
    try:
        for partition, msgs in messages.items():
            batch = producer.create_batch()
            pending = []
            for key, value in msgs:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    pending.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
                sent += 1
            pending.append(await producer.send_batch(batch, topic, partition=partition))
            await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


async def read_all(bootstrap: str, topic: str, partitions: int, expected: int | None = None,
                   idle: float = 3.0, timeout: float = 600.0) -> list[ConsumerRecord]:
    """Every record of `topic`: until `expected` records were read, or none came for `idle` seconds.
    Ends from fetches, never ListOffsets (tansu's ListOffsets(latest) is wrong)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, max_partition_fetch_bytes=8_000_000,
                                fetch_max_bytes=50_000_000)
    await consumer.start()
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    out: list[ConsumerRecord] = []
    last = start = time.monotonic()
    try:
        while time.monotonic() - start < timeout:
            got = await consumer.getmany(timeout_ms=300, max_records=100_000)
            for recs in got.values():
                out.extend(recs)
            now = time.monotonic()
            if got:
                last = now
            if (expected is not None and len(out) >= expected) or now - last > idle:
                break
    finally:
        await consumer.stop()
    return out
