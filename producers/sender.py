"""The one batching sender every producer writes through.

`send` only appends the batch to the durable spool (`producers.spool`), so a producer never waits on
Kafka and a broker outage or a restart loses nothing the spool could hold. A drain task sends the spool to
Kafka in order, many batches in flight at once, and acknowledges them in the spool only once Kafka has;
after a failure the unacknowledged rest is sent again when the broker is back.

The sender's own counters (spooled, sent, dropped with reason, pending) are samples too: every
`self_metrics_seconds` they go through the same spool as `watchkeeper_producer_*` series.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

from watchkeeper.plumbing.config import KafkaConfig, SpoolConfig
from watchkeeper.plumbing.topics import ensure_topics, topic_plan
from watchkeeper.producers.batch_split import split_batch
from watchkeeper.producers.spool import Spool, SpooledRecord
from watchkeeper.schemas.codec import SchemaError, decode_sample_message, encode
from watchkeeper.schemas.deadletter import DeadLetter
from watchkeeper.schemas.samples import SampleBatch, SeriesBlock

log = logging.getLogger("watchkeeper.sender")
# Kafka's record batch and record headers around a value and its key, with room to spare.
_RECORD_OVERHEAD = 512
# Refusals that sending again can never fix: the record is split (too large) or dead-lettered.
_TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError)
_PERMANENT = (*_TOO_LARGE, InvalidTopicError, CorruptRecordException, InvalidTimestampError)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, _TOO_LARGE):
        return "too_large"
    if isinstance(exc, InvalidTopicError):
        return "invalid_topic"
    if isinstance(exc, InvalidTimestampError):
        return "invalid_timestamp"
    return "corrupt"


def _decoded(value: bytes) -> SampleBatch | None:
    try:
        return decode_sample_message(value)
    except SchemaError:
        return None


class BatchSender:
    def __init__(self, bootstrap: str, topic: str, spool_dir: Path, *, max_spool_bytes: int = 1024 * 2**20,
                 fsync_seconds: float = 0.2, source: str = "", linger: float = 0.005,
                 self_metrics_seconds: float = 10.0, in_flight: int = 500,
                 prepare: Callable[[], Awaitable[None]] | None = None, max_message_bytes: int = 2**20,
                 deadletter_topic: str = "") -> None:
        self.bootstrap, self.topic, self.source = bootstrap, topic, source
        self.max_message_bytes, self.deadletter_topic = max_message_bytes, deadletter_topic
        self.linger, self.in_flight = linger, in_flight
        self.spool = Spool(spool_dir, max_bytes=max_spool_bytes, fsync_seconds=fsync_seconds)
        # Batches Kafka refused for good and the dead-letter topic refused too (one JSON DeadLetter a line).
        self.deadletter_file = self.spool.dir / "deadletter.jsonl"
        self.self_metrics_seconds = self_metrics_seconds
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._producer: AIOKafkaProducer | None = None
        self._last_error = ""
        self._closing = False
        self._closed = asyncio.Event()  # set on stop: wakes the loops' sleeps
        # Awaited before the first connection (e.g. creating the topics), retried like a send while it
        # fails: a producer started while Kafka is down spools from its first second.
        self._prepare = prepare

    def stats(self) -> dict[str, Any]:
        s = self.spool.stats
        return {"spooled_batches": s.spooled_batches, "spooled_points": s.spooled_points,
                "sent_batches": s.sent_batches, "sent_points": s.sent_points,
                "dropped_batches": dict(s.dropped_batches), "dropped_points": dict(s.dropped_points),
                "pending_batches": self.spool.pending(), "spool_bytes": self.spool.disk_bytes()}

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._drain()))
        if self.self_metrics_seconds > 0:
            self._tasks.append(asyncio.create_task(self._self_metrics_loop()))
        if self.spool.pending():
            log.info("spool %s: %d batches from before are waiting to be sent", self.spool.dir, self.spool.pending())
            self._wake.set()

    async def stop(self, timeout: float = 5.0) -> None:
        """Give the drain `timeout` seconds to empty the spool; what is left stays spooled for next time."""
        self._wake.set()
        deadline = time.monotonic() + timeout
        while self.spool.pending() and time.monotonic() < deadline and not self._last_error:
            await asyncio.sleep(0.02)
        self._closing = True  # the drain finishes the send in hand (so nothing is sent twice), then returns
        self._wake.set()
        self._closed.set()
        for task in self._tasks:
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout=15.0)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._tasks.clear()
        await self._reset()
        self.spool.close()
        if self.spool.pending():
            log.warning("stopped with %d batches still spooled in %s; they are sent on the next start",
                        self.spool.pending(), self.spool.dir)

    def records_of(self, batch: SampleBatch) -> list[tuple[bytes, bytes, int]]:
        """`(key, value, points)` of the Kafka messages one batch becomes: split to fit `max_message_bytes`."""
        key = (batch.source or self.source).encode()
        fit = self.max_message_bytes - len(key) - _RECORD_OVERHEAD
        return [(key, value, piece.point_count()) for piece, value in split_batch(batch, fit)]

    async def send(self, batch: SampleBatch) -> bool:
        """Spool one batch, split to fit a Kafka message (False: some was dropped, counted with its reason)."""
        ok = True
        for key, value, points in self.records_of(batch):
            ok = self.spool.append(key, value, points) and ok
        self._wake.set()
        return ok

    def wake(self) -> None:
        """Tell the drain that something was appended to the spool directly (the push API's all-or-nothing)."""
        self._wake.set()

    def self_metrics(self, now: float) -> SampleBatch:
        s = self.spool.stats
        blocks = [
            SeriesBlock(name="watchkeeper_producer_spooled_samples_total", kind="counter", ts=[now],
                        values=[float(s.spooled_points)]),
            SeriesBlock(name="watchkeeper_producer_sent_samples_total", kind="counter", ts=[now],
                        values=[float(s.sent_points)]),
            SeriesBlock(name="watchkeeper_producer_spool_pending_batches", ts=[now],
                        values=[float(self.spool.pending())]),
            SeriesBlock(name="watchkeeper_producer_spool_bytes", ts=[now], values=[float(self.spool.disk_bytes())]),
        ]
        for reason in ("spool_full", "too_large", *sorted(set(s.dropped_points) - {"spool_full", "too_large"})):
            blocks.append(SeriesBlock(name="watchkeeper_producer_dropped_samples_total", kind="counter",
                                      labels={"reason": reason}, ts=[now],
                                      values=[float(s.dropped_points.get(reason, 0))]))
        return SampleBatch(source=self.source or "producer", labels={"producer": self.source or "producer"},
                           series=blocks)

    async def _self_metrics_loop(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.self_metrics_seconds):
                    await self._closed.wait()
            if not self._closing:
                await self.send(self.self_metrics(time.time()))

    async def _drain(self) -> None:
        backoff = 0.5
        while not self._closing:
            records = self.spool.read(max_records=self.in_flight)
            if not records:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._wake.wait()
                continue
            acked, error = await self._send(records)
            if acked:
                self.spool.ack(acked)
            if error is None:
                backoff = 0.5
                continue
            if error != self._last_error:
                log.warning("broker %s unreachable or failing (%s); %d batches spooled, retried until it takes "
                            "them", self.bootstrap, error, self.spool.pending())
                self._last_error = error
            await self._reset()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self._closed.wait()
            backoff = min(backoff * 2, 10.0)

    async def _send(self, records: list[SpooledRecord]) -> tuple[int, str | None]:
        """Send records in order; returns the number after the longest settled prefix and the transient error.

        A record is settled when Kafka has it, or when Kafka refused it for good (too large: sent again in
        smaller pieces; invalid topic, corrupt: dead-lettered). Only a transient error stops the prefix, so
        no single record can block the ones behind it.
        """
        try:
            producer = await self._connected()
        except Exception as exc:  # any failure to connect is retried: the drain must not die
            return 0, f"{type(exc).__name__}: {exc}"
        pending: list[Any] = []  # per record: its delivery future, or the permanent error send() raised
        stop_error: str | None = None
        for record in records:
            try:
                if record.corrupt:
                    raise CorruptRecordException(f"spool record {record.number} does not match its crc32")
                pending.append(await producer.send(self.topic, record.value, key=record.key))
            except _PERMANENT as exc:
                pending.append(exc)
            except Exception as exc:  # send what was queued before it; the rest is retried
                stop_error = f"{type(exc).__name__}: {exc}"
                break
        acked = 0
        for record, outcome in zip(records, pending, strict=False):
            failure = await self._outcome(outcome)
            error: str | None = None
            if isinstance(failure, _PERMANENT):
                error = await self._settle_refused(producer, record.number, record.key, record.value,
                                                   record.points, failure)
            elif failure is not None:
                error = f"{type(failure).__name__}: {failure}"
            if error is not None:
                await asyncio.gather(*(o for o in pending if isinstance(o, asyncio.Future)), return_exceptions=True)
                return acked, error
            acked = record.number + 1
        if stop_error is not None:
            return acked, stop_error
        if self._last_error:
            log.info("broker %s reachable again; draining %d spooled batches", self.bootstrap, self.spool.pending())
            self._last_error = ""
        return acked, None

    @staticmethod
    async def _outcome(outcome: Any) -> BaseException | None:
        if isinstance(outcome, BaseException):
            return outcome
        try:
            await outcome
        except Exception as exc:
            return exc
        return None

    async def _settle_refused(self, producer: AIOKafkaProducer, number: int, key: bytes, value: bytes,
                              points: int, exc: BaseException) -> str | None:
        """Deal with a record Kafka refused for good; a transient error on the way is returned (retry later)."""
        if isinstance(exc, _TOO_LARGE):
            batch = _decoded(value)
            pieces = split_batch(batch, max(len(value) // 2, 1024)) if batch is not None else []
            if len(pieces) > 1:
                log.error("batch %d (%d bytes, %d samples) is too large for the broker (%s); sending it as %d "
                          "smaller batches", number, len(value), points, exc, len(pieces))
                for piece, piece_value in pieces:
                    try:
                        await (await producer.send(self.topic, piece_value, key=key))
                    except _PERMANENT as piece_exc:
                        error = await self._settle_refused(producer, number, key, piece_value,
                                                           piece.point_count(), piece_exc)
                        if error is not None:
                            return error
                    except Exception as piece_exc:
                        return f"{type(piece_exc).__name__}: {piece_exc}"
                return None
        reason = _reason(exc)
        log.error("batch %d (%d bytes, %d samples) cannot be sent, not now nor later (%s); dead-lettered with "
                  "reason %r, the spool goes on", number, len(value), points, exc, reason)
        try:
            await self._dead_letter(key, value, f"{reason}: {exc}")
        except OSError as file_exc:  # not even the file could take it: keep it spooled and try again
            return f"dead-letter file {self.deadletter_file}: {file_exc}"
        self.spool.count_drop(f"dead_letter_{reason}", 1, points)
        return None

    async def _dead_letter(self, key: bytes, value: bytes, reason: str) -> None:
        """To the dead-letter topic; when even that fails (it is too large there too), to a file in the spool."""
        letter = DeadLetter.of(value, topic=self.topic, partition=-1, offset=-1, reason=reason, time=time.time())
        encoded = encode(letter)
        if self.deadletter_topic and self._producer is not None:
            try:
                await (await self._producer.send(self.deadletter_topic, encoded, key=key))
                return
            except Exception as exc:
                log.error("dead-letter topic %s refused it too (%s: %s); writing it to %s", self.deadletter_topic,
                          type(exc).__name__, exc, self.deadletter_file)
        with open(self.deadletter_file, "ab") as fh:
            fh.write(orjson.dumps({"key": key.decode("utf-8", "replace"), **orjson.loads(encoded)}) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())

    async def _connected(self) -> AIOKafkaProducer:
        if self._prepare is not None:
            await self._prepare()
            self._prepare = None
        if self._producer is None:
            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=int(self.linger * 1000),
                                        request_timeout_ms=10_000, max_request_size=self.max_message_bytes,
                                        max_batch_size=min(2**20, self.max_message_bytes))
            try:
                await producer.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _reset(self) -> None:
        """Drop the producer; what it had in flight is still in the spool and is sent again."""
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception, asyncio.TimeoutError):
                await asyncio.wait_for(producer.stop(), timeout=5.0)


@dataclass(frozen=True)
class SenderSettings:
    """What a producer process's sender reads of `watchkeeper.yaml`, picked by the command that starts it."""

    kafka: KafkaConfig
    spool: SpoolConfig
    spool_dir: Path  # `spool.dir` resolved against the config file, or <data_dir>/spool


def sender_from_settings(settings: SenderSettings, name: str, *, source: str = "") -> BatchSender:
    """The sender of one producer process; its spool lives in `<spool dir>/<name>` (one owner per spool)."""
    kafka, spool = settings.kafka, settings.spool

    async def prepare() -> None:
        # Topics are created (with their partition counts) before anything is sent: a broker that
        # auto-creates would otherwise make wk.samples with its own default count.
        await ensure_topics(kafka.bootstrap, topic_plan(kafka.topics), timeout=5.0)

    return BatchSender(kafka.bootstrap, kafka.topics.samples, settings.spool_dir / name,
                       max_spool_bytes=spool.max_bytes, fsync_seconds=spool.fsync_seconds,
                       source=source or name, prepare=prepare, max_message_bytes=spool.max_message_bytes,
                       deadletter_topic=kafka.topics.deadletter)
