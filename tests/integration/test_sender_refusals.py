"""Given a spool holding batches the broker will never take (larger than the producer's max_message_bytes, as
a spool written before an upgrade or under a larger limit holds them), expect no head-of-line blocking: a
splittable batch is sent as smaller messages, an unsplittable one is dead-lettered (to the dead-letter topic,
or to `deadletter.jsonl` in the spool when that refuses it too), and everything queued behind them arrives.

tansu 0.6.0 enforces no message size (it took 3 MiB and 200 MiB messages on a topic created with
`max.message.bytes` 2,000), so the refusal comes from the producer's own `max_request_size`, which aiokafka
reports with the same `MessageSizeTooLargeError` a Kafka broker answers with."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path

import orjson
import pytest

from tests.integration.kafka_io import consume_until
from watchkeeper.plumbing.topics import ensure_topics
from watchkeeper.producers.sender import BatchSender
from watchkeeper.schemas.codec import decode_sample_message, encode
from watchkeeper.schemas.deadletter import DeadLetter
from watchkeeper.schemas.samples import SampleBatch, SeriesBlock

LIMIT = 8 * 1024


def batch(name: str, points: int, labels: dict[str, str] | None = None) -> SampleBatch:
    return SampleBatch(source="refusals", series=[SeriesBlock(name=name, labels=labels or {},
                                                              ts=[1_790_000_000.0 + k for k in range(points)],
                                                              values=[float(k) for k in range(points)])])


async def drain(sender: BatchSender, timeout: float = 30.0) -> None:
    await sender.start()
    deadline = time.monotonic() + timeout
    while sender.spool.pending() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await sender.stop()


@pytest.fixture
def topics(broker: str) -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    samples, deadletter = f"refusals{suffix}.samples", f"refusals{suffix}.deadletter"
    asyncio.run(ensure_topics(broker, {samples: 1, deadletter: 1}))
    return samples, deadletter


def test_too_large_batches_are_split_or_dead_lettered_and_nothing_behind_them_waits(
        broker: str, topics: tuple[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    samples, deadletter = topics
    spool_dir = tmp_path / "spool"
    # Written under no limit (an older spool, a larger limit before): one 40 KB batch, one point with a
    # 20 KB label (it cannot be split), then the batches queued behind them.
    writer = BatchSender(broker, samples, spool_dir, self_metrics_seconds=0, max_message_bytes=2**20)
    big, huge_point = batch("big", 2000), batch("huge_point", 1, {"blob": "x" * 20_000})
    for b in (big, huge_point, batch("behind", 3), batch("behind", 4)):
        asyncio.run(writer.send(b))
    assert writer.spool.pending() == 4
    writer.spool.close()

    sender = BatchSender(broker, samples, spool_dir, self_metrics_seconds=0, max_message_bytes=LIMIT,
                         deadletter_topic=deadletter)
    with caplog.at_level(logging.WARNING, logger="watchkeeper.sender"):
        asyncio.run(drain(sender))
    assert sender.spool.pending() == 0, "the spool drained past both refused batches"

    records = asyncio.run(consume_until(broker, samples, lambda r: sum(
        len(decode_sample_message(x.value).series[0].ts) for x in r) >= 2007))
    got = [decode_sample_message(r.value) for r in records]
    assert all(len(r.value) <= LIMIT for r in records)
    big_points = [v for b in got if b.series[0].name == "big" for v in b.series[0].values]
    assert sorted(big_points) == big.series[0].values and len([b for b in got if b.series[0].name == "big"]) > 1
    assert sorted(len(b.series[0].ts) for b in got if b.series[0].name == "behind") == [3, 4]
    assert not [b for b in got if b.series[0].name == "huge_point"]

    # The unsplittable point: too large for the dead-letter topic too (base64 grows it), so it is in the file.
    letters = [orjson.loads(line) for line in (spool_dir / "deadletter.jsonl").read_bytes().splitlines()]
    assert len(letters) == 1 and letters[0]["key"] == "refusals"
    letter = DeadLetter.model_validate({k: v for k, v in letters[0].items() if k != "key"})
    assert letter.reason.startswith("too_large: [Error 10] MessageSizeTooLargeError") and letter.topic == samples
    assert decode_sample_message(letter.original_bytes()) == huge_point
    assert sender.spool.stats.dropped_points == {"dead_letter_too_large": 1}

    text = caplog.text
    assert "is too large for the broker" in text and "sending it as" in text
    assert "cannot be sent, not now nor later" in text and "dead-lettered with reason 'too_large'" in text
    assert "unreachable" not in text, "a size refusal is not reported as an outage"


def test_new_batches_are_split_before_they_are_spooled(broker: str, topics: tuple[str, str], tmp_path: Path) -> None:
    samples, _ = topics
    sender = BatchSender(broker, samples, tmp_path / "spool", self_metrics_seconds=0, max_message_bytes=LIMIT)
    wide = SampleBatch(source="refusals", labels={"env": "prod"}, series=[
        SeriesBlock(name="wide", labels={"i": str(i)}, ts=[1_790_000_000.0], values=[float(i)]) for i in range(2000)])
    assert len(encode(wide)) > 10 * LIMIT
    asyncio.run(sender.send(wide))
    assert sender.spool.pending() > 10
    asyncio.run(drain(sender))
    records = asyncio.run(consume_until(broker, samples, lambda r: sum(
        len(decode_sample_message(x.value).series) for x in r) >= 2000))
    got = [decode_sample_message(r.value) for r in records]
    assert all(len(r.value) <= LIMIT for r in records) and all(b.labels == {"env": "prod"} for b in got)
    assert sorted(int(s.labels["i"]) for b in got for s in b.series) == list(range(2000))


def test_a_record_the_disk_corrupted_is_dead_lettered_to_the_topic_and_the_rest_sent(
        broker: str, topics: tuple[str, str], tmp_path: Path) -> None:
    samples, deadletter = topics
    sender = BatchSender(broker, samples, tmp_path / "spool", self_metrics_seconds=0, deadletter_topic=deadletter)
    for b in (batch("first", 2), batch("rotten", 3), batch("last", 4)):
        asyncio.run(sender.send(b))
    sender.spool.sync()
    segment = next((tmp_path / "spool").glob("*.seg"))
    data = bytearray(segment.read_bytes())
    at = data.index(b"rotten")
    data[at] ^= 0x20  # "Rotten": the crc32 no longer matches
    segment.write_bytes(bytes(data))

    asyncio.run(drain(sender))
    assert sender.spool.pending() == 0
    records = asyncio.run(consume_until(broker, samples, lambda r: len(r) >= 2))
    assert [decode_sample_message(r.value).series[0].name for r in records] == ["first", "last"]
    letters = asyncio.run(consume_until(broker, deadletter, lambda r: len(r) >= 1))
    letter = DeadLetter.model_validate_json(letters[0].value)
    assert letter.reason == "corrupt: [Error 2] CorruptRecordException: spool record 1 does not match its crc32"
    assert b"Rotten" in letter.original_bytes() and letter.topic == samples
    assert sender.spool.stats.dropped_points == {"dead_letter_corrupt": 3}
    assert not (tmp_path / "spool" / "deadletter.jsonl").exists()
