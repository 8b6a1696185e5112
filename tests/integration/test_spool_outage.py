"""Given producers sending through the spool and the broker down for 60 s (and the producer process restarted
while it is down), expect every sample to arrive in Kafka exactly once when the broker is back.

tansu keeps its log in memory, so the broker that comes back is a fresh one on the same port: what the first
broker acknowledged is read from it before it goes down, and the rest must come from the spool."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from watchkeeper.plumbing.broker import free_port, start_broker
from watchkeeper.plumbing.config import load_config
from watchkeeper.plumbing.topics import ensure_topics, topic_plan
from watchkeeper.producers.sender import BatchSender
from watchkeeper.schemas.samples import SampleBatch, SeriesBlock

TOPIC = "outage.samples"
DOWN_SECONDS = float(os.environ.get("WK_OUTAGE_SECONDS", "60"))


def batch(seq: int) -> SampleBatch:
    return SampleBatch(source="outage-test", series=[SeriesBlock(name="seq", ts=[time.time()], values=[float(seq)])])


def seq_values(raw: bytes) -> list[int]:
    """The `seq` samples of one message (the producer's own watchkeeper_producer_* series are not counted)."""
    return [int(v) for s in orjson.loads(raw)["series"] if s["name"] == "seq" for v in s["values"]]


async def read_all(bootstrap: str, until: int, timeout: float, topic: str = TOPIC) -> list[int]:
    """Every `seq` value on `topic`, once `until` distinct values are there (or the timeout passes)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        while not parts:
            await consumer.topics()
            parts = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in parts])
        seen: list[int] = []
        deadline = time.monotonic() + timeout
        while len(set(seen)) < until and time.monotonic() < deadline:
            for recs in (await consumer.getmany(timeout_ms=200)).values():
                for rec in recs:
                    seen += seq_values(rec.value)
        await asyncio.sleep(1.0)  # anything arriving late would be a duplicate: give it the chance to show
        for recs in (await consumer.getmany(timeout_ms=500)).values():
            for rec in recs:
                seen += seq_values(rec.value)
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
            await asyncio.wait_for(sender.stop(), 30)
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


def test_producers_started_while_the_broker_is_down_spool_from_the_first_sample(tmp_path: Path) -> None:
    """`watchkeeper produce push` with no broker yet: the push API answers at once, samples are spooled, and
    when the broker starts the topics are created with their configured partition counts (not the
    broker's auto-create default) and every sample arrives once."""
    port, push_port = free_port(), free_port()
    bootstrap = f"127.0.0.1:{port}"
    (tmp_path / "watchkeeper.yaml").write_text(
        f"data_dir: data\nkafka:\n  bootstrap: {bootstrap}\nproducers:\n  push:\n    port: {push_port}\n")
    cfg = load_config(tmp_path / "watchkeeper.yaml")
    proc = subprocess.Popen([sys.executable, "-m", "watchkeeper", "produce", "push", "--config",
                             str(tmp_path / "watchkeeper.yaml")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    broker = None
    try:
        sent = 0
        deadline = time.monotonic() + 30
        while sent < 20:
            body = orjson.dumps([{"name": "seq", "ts": time.time(), "value": float(sent)}])
            req = urllib.request.Request(f"http://127.0.0.1:{push_port}/api/v1/samples", data=body,
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    assert resp.status == 202
                sent += 1
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "push API never came up"
                time.sleep(0.2)
        broker = start_broker("127.0.0.1", port, log_path=tmp_path / "broker.log")

        async def partitions() -> int:
            """The samples topic's partition count once the producer has created it."""
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
            await admin.start()
            try:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    # all topics: naming one in a Metadata request makes tansu auto-create it (4 partitions)
                    for topic in await admin.describe_topics():
                        if topic["topic"] == cfg.kafka.topics.samples and topic["partitions"]:
                            return len(topic["partitions"])
                    await asyncio.sleep(0.5)
                return 0
            finally:
                await admin.close()

        assert asyncio.run(partitions()) == topic_plan(cfg.kafka.topics)[cfg.kafka.topics.samples]
        got = asyncio.run(read_all(bootstrap, until=sent, timeout=60, topic=cfg.kafka.topics.samples))
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode(errors="replace")
        if broker is not None:
            broker.terminate()
            broker.wait(timeout=10)
    assert sorted(got) == list(range(sent)), out[-2000:]
