"""Whether the broker has the known tansu 0.6.0 defects (DESIGN.md), so that each workaround runs only
where it is needed. `tests/integration/test_broker_defects.py` makes the same check, so a fixed broker is
noticed there as well.

The one probed: ListOffsets(latest) answers the last batch's base offset + 1 instead of the end of the
partition. Its workaround is a checkpoint record flushed alone, in its own batch, so that a reader trusting
ListOffsets (Faust's changelog recovery) still sees the newest one: one produce round trip per checkpoint,
which a real Kafka does not need. (End offsets the runtime reads itself always come from a fetch's high
watermark, right on both.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.structs import TopicPartition

log = logging.getLogger("watchkeeper.runtime")
PROBE_RECORDS = 5


@dataclass(frozen=True)
class BrokerDefects:
    list_offsets_latest: bool  # ListOffsets(latest) = the last batch's base offset + 1

    @classmethod
    def assumed(cls) -> BrokerDefects:
        """Every workaround on: what a worker assumes when the probe cannot run."""
        return cls(list_offsets_latest=True)


async def list_offsets_after_one_batch(bootstrap: str, topic: str, n: int = PROBE_RECORDS) -> tuple[int, int]:
    """Append one batch of `n` records to partition 0 of `topic`, then (ListOffsets(latest), the fetch's
    high watermark). A correct broker answers the same for both."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=200)
    await producer.start()
    try:
        batch = producer.create_batch()
        for i in range(n):
            batch.append(key=None, value=f"probe {i}".encode(), timestamp=None)
        await (await producer.send_batch(batch, topic, partition=0))
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="latest", enable_auto_commit=False)
    await consumer.start()
    tp = TopicPartition(topic, 0)
    try:
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, 0)
        high = consumer.highwater(tp)
        while high is None:
            await consumer.getmany(tp, timeout_ms=500, max_records=1)
            high = consumer.highwater(tp)
        return end, high
    finally:
        await consumer.stop()


async def probe(bootstrap: str, topic: str) -> BrokerDefects:
    """The defects of the broker at `bootstrap`, checked on `topic` (one partition, created if missing;
    each probe appends a few records to it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1,
                                                topic_configs={"cleanup.policy": "delete",
                                                               "retention.ms": str(3600 * 1000)})])
    finally:
        await admin.close()
    end, high = await list_offsets_after_one_batch(bootstrap, topic)
    found = BrokerDefects(list_offsets_latest=end != high)
    log.log(logging.WARNING if found.list_offsets_latest else logging.INFO,
            "broker at %s: ListOffsets(latest) %s (end %d, high watermark %d)", bootstrap,
            "wrong: its workaround is on" if found.list_offsets_latest else "right: its workaround is off", end, high)
    return found


class DefectsProbe:
    """The broker's defects, probed once per worker process (`run`, started with the worker, while tansu
    holds the first group join for session_timeout / 2) and awaited by every agent that needs them."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self._found: BrokerDefects | None = None
        self._ready = asyncio.Event()  # bound to the worker's loop at its first wait

    async def run(self) -> None:
        try:
            self._found = await probe(self.bootstrap, self.topic)
        except Exception:  # the probe is advice: without it every workaround stays on
            log.exception("could not probe the broker's defects; keeping every workaround on")
            self._found = BrokerDefects.assumed()
        self._ready.set()

    async def get(self) -> BrokerDefects:
        await self._ready.wait()
        assert self._found is not None
        return self._found
