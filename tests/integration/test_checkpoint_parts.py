"""Given checkpoints larger than one checkpoint record written through `FaustPartitionIO` to a changelog
partition of the real broker (and, on another partition, a write a crash cut short), expect
`newest_checkpoints` to read back the newest complete one whole: an anomaly partition with many series'
detectors (~45 KiB each for `calibrated`) outgrows one Kafka message."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, cast

import faust
from aiokafka import AIOKafkaProducer

from watchkeeper.agents.partition_wiring import FaustPartitionIO
from watchkeeper.core.checkpoint_frame import frame
from watchkeeper.plumbing.config import Config
from watchkeeper.plumbing.topics import ensure_topics
from watchkeeper.runtime.checkpoint_log import cut


@dataclass
class Changelog:
    name: str

    def get_topic_name(self) -> str:
        return self.name


@dataclass
class Table:
    """The two things the IO asks of a Faust table: its changelog writes (here kept, then produced in
    order by the test) and its in-memory data."""

    sent: list[tuple[int, bytes, bytes]] = field(default_factory=list)
    data: dict[bytes, bytes] = field(default_factory=dict)

    def send_changelog(self, partition: int, key: bytes, value: bytes) -> None:
        self.sent.append((partition, key, value))


async def produce(bootstrap: str, topic: str, sent: list[tuple[int, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=4 * 2**20)
    await producer.start()
    try:
        for partition, key, value in sent:
            await (await producer.send(topic, value, key=key, partition=partition))
    finally:
        await producer.stop()


def test_a_checkpoint_in_parts_is_read_back_whole(wk_config: Config) -> None:
    bootstrap = wk_config.kafka.bootstrap
    topic = f"{wk_config.worker.app_id}-anomaly-aggregates-state-changelog"
    asyncio.run(ensure_topics(bootstrap, {topic: 3}))
    table = Table()
    io = FaustPartitionIO(cast(faust.App, None), bootstrap, "in", "out", None, Changelog(topic), table,
                          record_bytes=5000)
    old, new = frame({"offset": 10}, b"a" * 12_000), frame({"offset": 20}, bytes(range(256)) * 100)
    small = frame({"offset": 5}, b"fits")
    io.write_checkpoint(0, old)
    io.write_checkpoint(0, new)  # partition 0: two complete checkpoints in parts
    io.write_checkpoint(1, old)
    table.sent += [(1, b"1", v) for v in cut(new, 5000)[:2]]  # partition 1: the newest cut short by a crash
    io.write_checkpoint(2, small)  # partition 2: one record, as before
    assert len(table.sent) == 3 + 6 + 3 + 2 + 1
    asyncio.run(produce(bootstrap, topic, table.sent))
    table.data.clear()  # what a restarted worker's table holds before recovery: nothing is read from it
    got: dict[int, Any] = asyncio.run(io.newest_checkpoints([0, 1, 2]))
    assert got == {0: new, 1: old, 2: small}
