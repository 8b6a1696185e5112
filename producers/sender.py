"""The one batching sender every producer writes through.

While the broker is unreachable, batches wait in a bounded in-memory buffer; when it is full the oldest
batch is dropped and counted, and the count is logged, so a long outage never grows memory without bound.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from schemas.codec import encode
from schemas.samples import SampleBatch

log = logging.getLogger("watchkeeper.sender")


class BatchSender:
    def __init__(self, bootstrap: str, topic: str, *, spool_dir: Path | None = None,
                 max_spool_bytes: int = 256 * 2**20, linger: float = 0.05, source: str = "",
                 max_buffered_batches: int = 360) -> None:
        self.bootstrap, self.topic, self.source = bootstrap, topic, source
        self.linger = linger
        self._buffer: collections.deque[tuple[bytes, bytes]] = collections.deque()
        self._max = max_buffered_batches
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._producer: AIOKafkaProducer | None = None
        self._stats = {"sent_batches": 0, "sent_points": 0, "buffered_batches": 0, "dropped_batches": 0,
                       "dropped_reason_buffer_full": 0}
        self._points: dict[bytes, int] = {}

    def stats(self) -> dict[str, int]:
        return {**self._stats, "buffered_batches": len(self._buffer)}

    async def start(self) -> None:
        self._task = asyncio.create_task(self._drain())

    async def stop(self, timeout: float = 5.0) -> None:
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._flush_wait(), timeout)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
        if self._buffer:
            log.warning("stopped with %d batches not sent", len(self._buffer))

    async def _flush_wait(self) -> None:
        while self._buffer:
            await asyncio.sleep(0.05)

    async def send(self, batch: SampleBatch) -> None:
        key = (batch.source or self.source).encode()
        value = encode(batch)
        if len(self._buffer) >= self._max:
            _, dropped = self._buffer.popleft()
            self._points.pop(dropped, None)
            self._stats["dropped_batches"] += 1
            self._stats["dropped_reason_buffer_full"] += 1
            log.warning("broker unreachable: dropped the oldest batch (%d dropped so far)",
                        self._stats["dropped_batches"])
        self._points[value] = batch.point_count()
        self._buffer.append((key, value))
        self._wake.set()

    async def _drain(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._buffer:
                try:
                    producer = await self._connected()
                    key, value = self._buffer[0]
                    await producer.send_and_wait(self.topic, value, key=key)
                except (KafkaError, OSError) as exc:
                    log.warning("broker %s unreachable (%s); %d batches buffered", self.bootstrap, exc,
                                len(self._buffer))
                    await self._reset()
                    await asyncio.sleep(1.0)
                    continue
                self._buffer.popleft()
                self._stats["sent_batches"] += 1
                self._stats["sent_points"] += self._points.pop(value, 0)

    async def _connected(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=int(self.linger * 1000),
                                        request_timeout_ms=10_000, max_request_size=8 * 2**20)
            await producer.start()
            self._producer = producer
        return self._producer

    async def _reset(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
        self._producer = None
