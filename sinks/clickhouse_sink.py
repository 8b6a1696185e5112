"""The ClickHouse sink: raw samples, window aggregates, alerts and deliveries, in columnar batches.

Offsets are committed only after the rows they carried are inserted (or dead-lettered), so a crash
re-delivers rather than loses; the tables replace rows on identical keys, so re-delivery does not double
anything. A bad row never kills nor stalls the sink: a wrongly typed one is dead-lettered on the way in
(`row_problem`), one the Arrow builder still cannot take is found row by row, and one ClickHouse rejects
is found by inserting the batch in halves (`insert_bisecting`); all go to the dead-letter topic with the
reason, and only an outage (nothing goes in) is retried, forever, as before.
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

from watchkeeper.plumbing import kafka_clients
from watchkeeper.plumbing.config import KafkaConfig
from watchkeeper.plumbing.self_metrics import SINK_ERRORS, SINK_ROWS
from watchkeeper.schemas.codec import SchemaError, decode_sample_message, encode
from watchkeeper.schemas.deadletter import DeadLetter
from watchkeeper.schemas.samples import SampleBatch
from watchkeeper.sinks.clickhouse_row_checks import row_problem
from watchkeeper.sinks.clickhouse_rows import aggregates_table, alerts_table, notifications_table, samples_table
from watchkeeper.sinks.clickhouse_schema import create_tables
from watchkeeper.sinks.insert_bisection import error_kind, insert_bisecting
from watchkeeper.sinks.readonly_queries import QueryLimits, ReadOnlyQueries

log = logging.getLogger("watchkeeper.sink.clickhouse")

RETRY_SECONDS = 2.0
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
    """The writer client on one thread (chDB calls block, and one thread keeps the sink's calls ordered),
    and the read-only query endpoint's own sessions on theirs (`ReadOnlyQueries`), so a read never waits
    for an insert nor an insert for a read."""

    def __init__(self, dsn: str, samples_ttl_days: int = 30, limits: QueryLimits | None = None) -> None:
        self.dsn = dsn
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
        self._ttl = samples_ttl_days
        self.writer: Any = None
        # Only the owner of an embedded chDB serves reads; against a server, readers go to the server.
        self.reads = ReadOnlyQueries(dsn, limits or QueryLimits()) if dsn.startswith("chdb:") else None

    async def open(self) -> None:
        await self._run(self._open)
        if self.reads is not None:
            await self.reads.open()

    def _open(self) -> None:
        self.writer = clickhouse_connect.get_client(dsn=self.dsn)
        create_tables(self.writer, self._ttl)

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def insert(self, table: str, data: pa.Table) -> None:
        await self._run(self.writer.insert_arrow, table, data)

    async def query(self, sql: str, fmt: str, database: str | None,
                    parameters: dict[str, str] | None = None) -> bytes:
        """One checked read-only query (see `ReadOnlyQueries.query`)."""
        if self.reads is None:
            raise RuntimeError("the sink writes to a ClickHouse server: query the server directly")
        return await self.reads.query(sql, fmt, database, parameters)

    async def close(self) -> None:
        if self.reads is not None:
            await self.reads.close()

        def close() -> None:
            if self.writer is not None:
                self.writer.close()
        await self._run(close)
        self._executor.shutdown(wait=True)


@dataclass(frozen=True)
class ClickHouseSinkSettings:
    """What the sink reads of `watchkeeper.yaml`, picked by the command that starts it (as Prometheus' rule
    manager gets its `ManagerOptions`), so the sink depends on these fields and not on the whole file."""

    kafka: KafkaConfig
    group_id: str  # its consumer group (`<worker.app_id>-clickhouse`)
    batch_rows: int  # insert once this many rows are buffered (clickhouse.batch_rows) ...
    flush_seconds: float  # ... or this long after the last insert (clickhouse.flush_seconds)


class ClickHouseSink:
    def __init__(self, settings: ClickHouseSinkSettings, clickhouse: ClickHouse) -> None:
        self.settings = settings
        self.ch = clickhouse
        t = settings.kafka.topics
        self.table_of = {t.samples: "samples", t.aggregates: "aggregates", t.alerts: "alerts",
                         t.notifications: "notifications"}
        self.stats = SinkStats()
        self._buffers: dict[str, list[Any]] = {name: [] for name in _BUILDERS}
        self._records: dict[str, list[ConsumerRecord]] = {name: [] for name in _BUILDERS}  # where each came from
        self._rows_buffered = 0

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        consumer = kafka_clients.group_consumer(
            s.kafka, *self.table_of, group_id=s.group_id, auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 2**20)
        producer = kafka_clients.producer(s.kafka)
        await consumer.start()
        await producer.start()
        last_flush = time.monotonic()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                for records in batches.values():
                    for rec in records:
                        await self._take(rec, producer)
                due = time.monotonic() - last_flush >= s.flush_seconds
                if self._rows_buffered and (due or self._rows_buffered >= s.batch_rows):
                    await self._flush_and_commit(consumer, producer)
                    last_flush = time.monotonic()
                elif due:
                    last_flush = time.monotonic()
            if self._rows_buffered:
                await self._flush_and_commit(consumer, producer)
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
                self._records[table].append(rec)
                self._rows_buffered += batch.point_count()
                return
            obj = orjson.loads(raw)
            problem = row_problem(table, obj)
            if problem is not None:
                raise SchemaError(problem)
            self._buffers[table].append(obj)
            self._records[table].append(rec)
            self._rows_buffered += 1
        except (SchemaError, orjson.JSONDecodeError) as exc:
            if table == "samples":
                self.stats.bad_messages += 1
                return  # the window agent dead-letters bad samples; one entry per bad message
            reason = f"not JSON: {exc}" if isinstance(exc, orjson.JSONDecodeError) else str(exc)
            await self._dead_letter(producer, rec, reason)

    async def _dead_letter(self, producer: AIOKafkaProducer, rec: ConsumerRecord, reason: str) -> None:
        self.stats.bad_messages += 1
        log.warning("dead-lettering %s[%d]@%d: %s", rec.topic, rec.partition, rec.offset, reason)
        dl = DeadLetter.of(rec.value or b"", topic=rec.topic, partition=rec.partition, offset=rec.offset,
                           reason=f"clickhouse sink: {reason}", time=time.time())
        await producer.send_and_wait(self.settings.kafka.topics.deadletter, encode(dl), key=rec.key)

    async def _flush_and_commit(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        for table, items in self._buffers.items():
            if not items:
                continue
            records = self._records[table]
            good, bad = build_rows(_BUILDERS[table], items)
            for i, exc in bad:
                await self._dead_letter(producer, records[i], f"cannot build the {table} row: {exc!r}")
            if good is not None:
                await self._insert(table, [items[i] for i in good[0]], [records[i] for i in good[0]], good[1],
                                   producer)
            items.clear()
            records.clear()
        self._rows_buffered = 0
        self.stats.last_insert = time.time()
        await consumer.commit()

    async def _insert(self, table: str, items: list[Any], records: list[ConsumerRecord], data: pa.Table,
                      producer: AIOKafkaProducer) -> None:
        """Insert `data` (built from `items`); returns once every row is inserted or dead-lettered.

        An outage (see `sinks.insert_bisection`) is retried every `RETRY_SECONDS` for as long as it lasts,
        with the rows kept; a row ClickHouse rejects for its data is dead-lettered with ClickHouse's message.
        """
        while True:
            failure = await self._try_insert(table, data)
            if failure is None:
                return
            if error_kind(failure) != "outage":
                items, records, failure = await self._bisect(table, items, records, data, failure, producer)
                if not items:
                    return
                data = _BUILDERS[table](items)
            log.warning("insert into %s failed (%d rows kept), retrying in %.0f s: %s", table, len(items),
                        RETRY_SECONDS, failure)
            await asyncio.sleep(RETRY_SECONDS)

    async def _try_insert(self, table: str, data: pa.Table) -> Exception | None:
        """Insert `data`; on a failure that is not plainly an outage, once more, as it was (a blip is not
        worth splitting the batch for). Returns the last failure, or None once inserted."""
        failure: Exception | None = None
        for _ in range(2):
            try:
                await self.ch.insert(table, data)
                self._count_inserted(table, data.num_rows)
                return None
            except Exception as exc:  # classified by the caller; nothing is dropped on any of them
                self._count_error()
                failure = exc
                if error_kind(exc) == "outage":
                    break
        return failure

    async def _bisect(self, table: str, items: list[Any], records: list[ConsumerRecord], data: pa.Table,
                      failure: Exception, producer: AIOKafkaProducer,
                      ) -> tuple[list[Any], list[ConsumerRecord], Exception]:
        """Insert the batch in halves; dead-letter the rows ClickHouse rejects; return what an outage left."""
        build = _BUILDERS[table]

        async def insert_part(lo: int, hi: int) -> None:
            # one row per item, except samples (a message holds many points): rebuild those parts
            part = build(items[lo:hi]) if table == "samples" else data.slice(lo, hi - lo)
            await self.ch.insert(table, part)
            self._count_inserted(table, part.num_rows)

        outcome = await insert_bisecting(len(items), insert_part, failure)
        for i, exc in outcome.rejected:
            await self._dead_letter(producer, records[i], f"ClickHouse rejected the {table} row: {exc}")
        keep = [i for lo, hi in outcome.pending for i in range(lo, hi)]
        return [items[i] for i in keep], [records[i] for i in keep], outcome.outage or failure

    def _count_inserted(self, table: str, rows: int) -> None:
        self.stats.rows[table] += rows
        SINK_ROWS.labels("clickhouse", table).inc(rows)
        self.stats.inserts += 1

    def _count_error(self) -> None:
        self.stats.errors += 1
        SINK_ERRORS.labels("clickhouse").inc()


def build_rows(build: Callable[[Any], pa.Table], items: list[Any]) -> tuple[tuple[list[int], pa.Table] | None,
                                                                           list[tuple[int, Exception]]]:
    """Build `items` into one table; if that raises, find the items that cannot be built, one by one.

    Returns ((indices of the built items, their table) or None when none could be, [(index, error)]).
    The rows were type-checked on the way in, so this is the second line: whatever slipped through
    becomes a dead letter instead of killing the sink.
    """
    try:
        return (list(range(len(items))), build(items)), []
    except Exception:  # found row by row below, with each row's own error
        pass
    good: list[int] = []
    bad: list[tuple[int, Exception]] = []
    for i, item in enumerate(items):
        try:
            build([item])
            good.append(i)
        except Exception as exc:  # the row's error is its dead-letter reason
            bad.append((i, exc))
    if not good:
        return None, bad
    return (good, build([items[i] for i in good])), bad
