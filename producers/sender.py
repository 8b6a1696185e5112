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
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from producers.spool import Spool
from schemas.codec import encode
from schemas.samples import SampleBatch, SeriesBlock

log = logging.getLogger("watchkeeper.sender")


class BatchSender:
    def __init__(self, bootstrap: str, topic: str, spool_dir: Path, *, max_spool_bytes: int = 1024 * 2**20,
                 fsync_seconds: float = 0.2, source: str = "", linger: float = 0.005,
                 self_metrics_seconds: float = 10.0, in_flight: int = 500,
                 prepare: Callable[[], Awaitable[None]] | None = None) -> None:
        self.bootstrap, self.topic, self.source = bootstrap, topic, source
        self.linger, self.in_flight = linger, in_flight
        self.spool = Spool(spool_dir, max_bytes=max_spool_bytes, fsync_seconds=fsync_seconds)
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

    async def send(self, batch: SampleBatch) -> bool:
        """Spool one batch (False: dropped, counted with its reason)."""
        key = (batch.source or self.source).encode()
        ok = self.spool.append(key, encode(batch), batch.point_count())
        self._wake.set()
        return ok

    async def send_encoded(self, key: bytes, value: bytes, points: int) -> bool:
        """Spool an already encoded batch (the push API validates and encodes before it answers)."""
        ok = self.spool.append(key, value, points)
        self._wake.set()
        return ok

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
                log.warning("broker %s unreachable (%s); %d batches spooled", self.bootstrap, error,
                            self.spool.pending())
                self._last_error = error
            await self._reset()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self._closed.wait()
            backoff = min(backoff * 2, 10.0)

    async def _send(self, records: list[Any]) -> tuple[int, str | None]:
        """Send records in order; returns the number after the longest acknowledged prefix and the error."""
        acked = 0
        try:
            producer = await self._connected()
            futures = [await producer.send(self.topic, r.value, key=r.key) for r in records]
        except Exception as exc:  # any failure to send is retried: the drain must not die
            return 0, f"{type(exc).__name__}: {exc}"
        results = await asyncio.gather(*futures, return_exceptions=True)
        for record, result in zip(records, results, strict=True):
            if isinstance(result, BaseException):
                return acked, f"{type(result).__name__}: {result}"
            acked = record.number + 1
        if self._last_error:
            log.info("broker %s reachable again; draining %d spooled batches", self.bootstrap, self.spool.pending())
            self._last_error = ""
        return acked, None

    async def _connected(self) -> AIOKafkaProducer:
        if self._prepare is not None:
            await self._prepare()
            self._prepare = None
        if self._producer is None:
            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=int(self.linger * 1000),
                                        request_timeout_ms=10_000, max_request_size=8 * 2**20,
                                        max_batch_size=1 * 2**20)
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


def sender_from_config(cfg: Any, name: str, *, source: str = "") -> BatchSender:
    """The sender of one producer process; its spool lives in `<spool dir>/<name>` (one owner per spool)."""
    spool_cfg = cfg.producers.spool
    base = cfg.resolve(spool_cfg.dir) if spool_cfg.dir else cfg.data_path / "spool"

    async def prepare() -> None:
        # Topics are created (with their partition counts) before anything is sent: a broker that
        # auto-creates would otherwise make wk.samples with its own default count.
        from watchkeeper.topics import ensure_topics, topic_plan

        await ensure_topics(cfg.kafka.bootstrap, topic_plan(cfg), timeout=5.0)

    return BatchSender(cfg.kafka.bootstrap, cfg.kafka.topics.samples, base / name,
                       max_spool_bytes=spool_cfg.max_bytes, fsync_seconds=spool_cfg.fsync_seconds,
                       source=source or name, prepare=prepare)
