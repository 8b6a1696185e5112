"""What a partition of the aggregates topic already holds: the emission sequence number of its last
record, so a worker replaying input after a restart does not send a window twice.

The end of the partition comes from a fetch's high watermark, never from ListOffsets: tansu 0.6.0
answers ListOffsets(latest) with the last batch's base offset + 1 (DESIGN.md).
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

SEQ_HEADER = "wk-seq"


def seq_of(headers: object) -> int:
    for name, value in headers or ():  # type: ignore[attr-defined]
        if name == SEQ_HEADER:
            return int(value)
    return 0


async def last_sequences(bootstrap: str, topic: str, partitions: list[int], timeout: float = 30.0) -> dict[int, int]:
    """Per partition, the `wk-seq` header of its last record (0 when empty or unnumbered)."""
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
        found: dict[int, int] = {}
        for p, tp in tps.items():
            high = consumer.highwater(tp) or 0
            if high == 0:
                found[p] = 0
                continue
            consumer.seek(tp, high - 1)
            while p not in found:
                if loop.time() > deadline:
                    raise TimeoutError(f"could not read {topic}[{p}]@{high - 1} within {timeout:.0f} s")
                for rec in (await consumer.getmany(tp, timeout_ms=200)).get(tp, []):
                    if rec.offset == high - 1:
                        found[p] = seq_of(rec.headers)
        return found
    finally:
        await consumer.stop()
