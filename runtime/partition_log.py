"""Reads of one partition's log: its last record (on an output topic, its emission sequence number, so a
worker replaying input after a restart does not send a record twice; on a checkpoint changelog, the
newest checkpoint) and a range of its records (a resume's replay).

The end of the partition comes from a fetch's high watermark, never from ListOffsets: tansu 0.6.0
answers ListOffsets(latest) with the last batch's base offset + 1 (DESIGN.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition

from watchkeeper.runtime.exactly_once import stream_of


async def high_watermarks(bootstrap: str, topic: str, partitions: list[int],
                          timeout: float = 30.0) -> dict[int, int]:
    """Per partition, its end (the offset its next record gets), from a fetch's high watermark."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=50)
    await consumer.start()
    tps = {p: TopicPartition(topic, p) for p in partitions}
    try:
        consumer.assign(list(tps.values()))
        deadline = asyncio.get_running_loop().time() + timeout
        while any(consumer.highwater(tp) is None for tp in tps.values()):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"no fetch answer for {topic} within {timeout:.0f} s")
            await consumer.getmany(timeout_ms=100, max_records=1)
        return {p: consumer.highwater(tp) or 0 for p, tp in tps.items()}
    finally:
        await consumer.stop()


async def last_of_stream(bootstrap: str, topic: str, partitions: list[int], stream: str,
                         window: int = 256) -> dict[int, ConsumerRecord | None]:
    """Per partition, the last record whose `wk-stream` header is `stream` (None when it has none): read
    backwards from the end in windows that double, so a stream whose last record is recent (the usual
    case: its writer checkpoints every few seconds) costs one small read, whatever the other writers
    wrote before."""
    found: dict[int, ConsumerRecord | None] = {}
    for p, high in (await high_watermarks(bootstrap, topic, partitions)).items():
        found[p], stop, size = None, high, window
        while stop > 0 and found[p] is None:
            start = max(0, stop - size)
            async for rec in iter_range(bootstrap, topic, p, start, stop):
                if stream_of(rec.headers) == stream:
                    found[p] = rec
            stop, size = start, size * 2
    return found


async def last_records(bootstrap: str, topic: str, partitions: list[int],
                       timeout: float = 30.0) -> dict[int, ConsumerRecord | None]:
    """Per partition, its last record (None when empty)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=50)
    await consumer.start()
    tps = {p: TopicPartition(topic, p) for p in partitions}
    try:
        consumer.assign(list(tps.values()))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(consumer.highwater(tp) is None for tp in tps.values()):
            if loop.time() > deadline:
                raise TimeoutError(f"no fetch answer for {topic} within {timeout:.0f} s")
            await consumer.getmany(timeout_ms=100, max_records=1)
        found: dict[int, ConsumerRecord | None] = {}
        for p, tp in tps.items():
            high = consumer.highwater(tp) or 0
            if high == 0:
                found[p] = None
                continue
            consumer.seek(tp, high - 1)
            while p not in found:
                if loop.time() > deadline:
                    raise TimeoutError(f"could not read {topic}[{p}]@{high - 1} within {timeout:.0f} s")
                for rec in (await consumer.getmany(tp, timeout_ms=200)).get(tp, []):
                    if rec.offset == high - 1:
                        found[p] = rec
        return found
    finally:
        await consumer.stop()


async def iter_range(bootstrap: str, topic: str, partition: int, start: int, stop: int | None = None,
                     stall_timeout: float = 60.0, chunk: int = 1000) -> AsyncIterator[ConsumerRecord]:
    """Records `start` <= offset < `stop` of one partition, in order (see `iter_chunks`)."""
    async for records in iter_chunks(bootstrap, topic, partition, start, stop, stall_timeout, chunk):
        for rec in records:
            yield rec


async def iter_chunks(bootstrap: str, topic: str, partition: int, start: int, stop: int | None = None,
                      stall_timeout: float = 60.0, chunk: int = 1000) -> AsyncIterator[list[ConsumerRecord]]:
    """Records `start` <= offset < `stop` of one partition, in order, in lists of at most `chunk` (a
    restart's catch-up replay, processed a list at a time). `stop` None means the partition's end when the
    replay starts (a fetch's high watermark). A long backlog is never held in memory at once."""
    if stop is not None and stop <= start:
        return
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=50,
                                max_partition_fetch_bytes=8_000_000)
    await consumer.start()
    tp = TopicPartition(topic, partition)
    try:
        consumer.assign([tp])
        consumer.seek(tp, start)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + stall_timeout
        end, next_offset = stop, start
        while end is None or next_offset < end:
            records = (await consumer.getmany(tp, timeout_ms=200, max_records=chunk)).get(tp, [])
            if end is None:
                end = consumer.highwater(tp)
            out = [rec for rec in records if rec.offset >= next_offset and (end is None or rec.offset < end)]
            if out:
                next_offset = out[-1].offset + 1
                deadline = loop.time() + stall_timeout
                yield out
            elif records and end is not None and records[-1].offset >= end:
                return
            elif loop.time() > deadline:
                raise TimeoutError(f"could not read {topic}[{partition}]@{next_offset}..{end} "
                                   f"(no progress in {stall_timeout:.0f} s)")
    finally:
        await consumer.stop()
