"""The floor: aiokafka + orjson decoding the samples topic and nothing else (run as its own process).

Prints one JSON line: samples, seconds from the first fetch to the last message, CPU seconds, peak RSS.
"""

from __future__ import annotations

import asyncio
import sys
import time

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from bench.windows.peak_rss import peak_rss


async def main(bootstrap: str, topic: str, messages: int) -> dict[str, float]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, max_partition_fetch_bytes=8_000_000)
    await consumer.start()
    consumer.assign([TopicPartition(topic, p) for p in range(8)])
    seen = samples = 0
    start = cpu0 = 0.0
    try:
        while seen < messages:
            got = await consumer.getmany(timeout_ms=500, max_records=10_000)
            if not start and got:
                start, cpu0 = time.time(), time.process_time()
            for recs in got.values():
                for rec in recs:
                    m = orjson.loads(rec.value)
                    if "series" in m:
                        samples += sum(len(b["ts"]) for b in m["series"])
                    else:
                        samples += 1
                seen += len(recs)
    finally:
        await consumer.stop()
    return {"samples": samples, "seconds": time.time() - start, "cpu": time.process_time() - cpu0,
            "rss": peak_rss()}


if __name__ == "__main__":
    print(orjson.dumps(asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))).decode())
