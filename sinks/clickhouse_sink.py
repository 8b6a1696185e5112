"""The ClickHouse sink: raw samples, window aggregates, alerts and deliveries, in columnar batches.

Offsets are committed only after the rows they carried are inserted, so a crash re-delivers rather than
loses; the tables replace rows on identical keys, so re-delivery does not double anything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import clickhouse_connect
import orjson
import pyarrow as pa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from schemas.codec import SchemaError, decode_sample_message, encode
from schemas.deadletter import DeadLetter
from schemas.samples import SampleBatch
from sinks.clickhouse_rows import aggregates_table, alerts_table, notifications_table, samples_table
from sinks.clickhouse_schema import create_tables
from watchkeeper.config import Config
from watchkeeper.self_metrics import SINK_ERRORS, SINK_ROWS

log = logging.getLogger("watchkeeper.sink.clickhouse")

_REQUIRED = {
    "aggregates": ("series_id", "name", "labels", "start", "end", "count", "sketch"),
    "alerts": ("fingerprint", "rule", "state", "starts_at", "event_time"),
    "notifications": ("notification_id", "receiver", "integration", "group_key", "status", "time"),
}
_BUILDERS: dict[str, Callable[[Any], pa.Table]] = {
    "samples": samples_table,
    "aggregates": aggregates_table,
    "alerts": alerts_table,
    "notifications": notifications_table,
}


@dataclass
class SinkStats:
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_BUILDERS, 0))
    inserts: int = 0
    bad_messages: int = 0
    errors: int = 0
    last_insert: float = 0.0


class ClickHouse:
    """One writer client and one read-only client on a single thread: chDB calls block, and one thread
    keeps the embedded engine's calls ordered."""

    def __init__(self, dsn: str, samples_ttl_days: int = 30) -> None:
        self.dsn = dsn
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
        self._ttl = samples_ttl_days
        self.writer: Any = None
        self.reader: Any = None
        self._default_database: str | None = None

    async def open(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        self.writer = clickhouse_connect.get_client(dsn=self.dsn)
        create_tables(self.writer, self._ttl)
        self.reader = clickhouse_connect.get_client(dsn=self.dsn, settings={"readonly": 1})
        self._default_database = self.reader.database

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def insert(self, table: str, data: pa.Table) -> None:
        await self._run(self.writer.insert_arrow, table, data)

    async def query(self, sql: str, fmt: str, database: str | None) -> bytes:
        def run() -> bytes:
            self.reader.database = database or self._default_database
            return bytes(self.reader.raw_query(sql, fmt=fmt))
        result: bytes = await self._run(run)
        return result

    async def close(self) -> None:
        def close() -> None:
            for c in (self.reader, self.writer):
                if c is not None:
                    c.close()
        await self._run(close)
        self._executor.shutdown(wait=True)


class ClickHouseSink:
    def __init__(self, cfg: Config, clickhouse: ClickHouse) -> None:
        self.cfg = cfg
        self.ch = clickhouse
        t = cfg.kafka.topics
        self.table_of = {t.samples: "samples", t.aggregates: "aggregates", t.alerts: "alerts",
                         t.notifications: "notifications"}
        self.stats = SinkStats()
        self._buffers: dict[str, list[Any]] = {name: [] for name in _BUILDERS}
        self._rows_buffered = 0

    async def run(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            *self.table_of,
            bootstrap_servers=self.cfg.kafka.bootstrap,
            group_id=f"{self.cfg.worker.app_id}-clickhouse",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(self.cfg.kafka.session_timeout * 1000),
            heartbeat_interval_ms=int(min(3.0, self.cfg.kafka.session_timeout / 3) * 1000),
            max_partition_fetch_bytes=8 * 2**20,
        )
        producer = AIOKafkaProducer(bootstrap_servers=self.cfg.kafka.bootstrap)
        await consumer.start()
        await producer.start()
        last_flush = time.monotonic()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                for records in batches.values():
                    for rec in records:
                        await self._take(rec, producer)
                due = time.monotonic() - last_flush >= self.cfg.clickhouse.flush_seconds
                if self._rows_buffered and (due or self._rows_buffered >= self.cfg.clickhouse.batch_rows):
                    await self._flush_and_commit(consumer)
                    last_flush = time.monotonic()
                elif due:
                    last_flush = time.monotonic()
            if self._rows_buffered:
                await self._flush_and_commit(consumer)
        finally:
            await consumer.stop()
            await producer.stop()

    async def _take(self, rec: ConsumerRecord, producer: AIOKafkaProducer) -> None:
        table = self.table_of[rec.topic]
        raw: bytes = rec.value or b""
        try:
            if table == "samples":
                batch: SampleBatch = decode_sample_message(raw)
                self._buffers[table].append(batch)
                self._rows_buffered += batch.point_count()
                return
            obj = orjson.loads(raw)
            if not isinstance(obj, dict):
                raise SchemaError(f"expected a JSON object, got {type(obj).__name__}")
            missing = [k for k in _REQUIRED[table] if k not in obj]
            if missing:
                raise SchemaError(f"missing fields {missing}")
            self._buffers[table].append(obj)
            self._rows_buffered += 1
        except (SchemaError, orjson.JSONDecodeError) as exc:
            self.stats.bad_messages += 1
            if table == "samples":
                return  # the window agent dead-letters bad samples; one entry per bad message
            dl = DeadLetter.of(raw, topic=rec.topic, partition=rec.partition, offset=rec.offset,
                               reason=f"clickhouse sink: {exc}", time=time.time())
            await producer.send_and_wait(self.cfg.kafka.topics.deadletter, encode(dl), key=rec.key)

    async def _flush_and_commit(self, consumer: AIOKafkaConsumer) -> None:
        for table, items in self._buffers.items():
            if not items:
                continue
            data = _BUILDERS[table](items)
            while True:
                try:
                    await self.ch.insert(table, data)
                    break
                except Exception as exc:  # keep the rows; a transient ClickHouse error must not lose them
                    self.stats.errors += 1
                    SINK_ERRORS.labels("clickhouse").inc()
                    log.warning("insert into %s failed, retrying in 2 s: %s", table, exc)
                    await asyncio.sleep(2.0)
            self.stats.rows[table] += data.num_rows
            SINK_ROWS.labels("clickhouse", table).inc(data.num_rows)
            self.stats.inserts += 1
            items.clear()
        self._rows_buffered = 0
        self.stats.last_insert = time.time()
        await consumer.commit()
