"""Read-only queries on the embedded chDB, beside (never in the way of) the sink's inserts.

Each reader is its own clickhouse-connect chDB client (its own engine handle, so its own session), on its
own thread: chDB runs queries on different handles at once, so a slow read holds up neither the sink's
inserts, which have their own client and thread, nor more than its own reader. Every reader session has
the limits set first and `readonly=1` last, so a request can change neither (`SET`, a `SETTINGS` clause
and URL settings are refused as well: see `readonly_sql`).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import clickhouse_connect

from watchkeeper.sinks.readonly_sql import QueryRefused, check_ast, denied_function_names


@dataclass(frozen=True)
class QueryLimits:
    """Per-query limits every read runs under (ClickHouse settings of the reader sessions)."""

    max_execution_time: float = 30.0
    max_memory_usage: int = 2 * 2**30
    max_result_rows: int = 1_000_000
    max_result_bytes: int = 256 * 2**20
    readers: int = 2

    def settings(self) -> dict[str, Any]:
        """Session settings, `readonly` last: after it the session can change no setting."""
        return {
            "max_execution_time": self.max_execution_time,
            "max_memory_usage": self.max_memory_usage,
            "max_result_rows": self.max_result_rows,
            "max_result_bytes": self.max_result_bytes,
            "result_overflow_mode": "throw",
            "readonly": 1,
        }


class ReadOnlyQueries:
    """A small pool of read-only chDB sessions that check each query before running it."""

    def __init__(self, dsn: str, limits: QueryLimits) -> None:
        self.dsn = dsn
        self.limits = limits
        self._executor = ThreadPoolExecutor(max_workers=limits.readers, thread_name_prefix="clickhouse-read")
        self._free: asyncio.Queue[Any] = asyncio.Queue()
        self._clients: list[Any] = []
        self._default_database = "default"
        self._denied: frozenset[str] = frozenset()

    async def open(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open)
        for client in self._clients:
            self._free.put_nowait(client)

    def _open(self) -> None:
        for _ in range(self.limits.readers):
            self._clients.append(clickhouse_connect.get_client(dsn=self.dsn, settings=self.limits.settings()))
        first = self._clients[0]
        self._default_database = first.database or "default"
        table_functions = [r[0] for r in first.query("SELECT name FROM system.table_functions").result_rows]
        aliases = first.query("SELECT name, alias_to FROM system.functions WHERE alias_to != ''").result_rows
        self._denied = denied_function_names(table_functions, [(r[0], r[1]) for r in aliases])

    async def query(self, sql: str, fmt: str, database: str | None = None,
                    parameters: dict[str, Any] | None = None) -> bytes:
        """Check `sql` and run it with a trailing `FORMAT fmt`; QueryRefused says why a query may not run.

        `parameters` bind `{name:Type}` placeholders (plain Python values, as clickhouse-connect takes them).
        """
        client = await self._free.get()
        loop = asyncio.get_running_loop()
        try:
            result: bytes = await loop.run_in_executor(
                self._executor, self._check_and_run, client, sql, fmt, database, parameters or {})
            return result
        except QueryRefused:
            raise  # refused before anything ran: the session is clean
        except Exception:
            # chDB leaves the partial output of a query that failed while writing it (a result limit, a
            # timeout) on the handle, and hands it to the next query there: never reuse that handle.
            client = await loop.run_in_executor(self._executor, self._replace, client)
            raise
        finally:
            self._free.put_nowait(client)

    def _replace(self, client: Any) -> Any:
        fresh = clickhouse_connect.get_client(dsn=self.dsn, settings=self.limits.settings())
        self._clients[self._clients.index(client)] = fresh
        client.close()
        return fresh

    def _check_and_run(self, client: Any, sql: str, fmt: str, database: str | None,
                       parameters: dict[str, Any]) -> bytes:
        client.database = database or self._default_database
        canonical = self.canonical(client, sql)
        dump = client.raw_query(f"EXPLAIN AST {canonical}", parameters=parameters or None)
        check_ast(bytes(dump).decode(), self._denied)
        return bytes(client.raw_query(canonical, parameters=parameters or None, fmt=fmt))

    @staticmethod
    def canonical(client: Any, sql: str) -> str:
        """ClickHouse's own single-line text of `sql`, parsed but not run: one statement, or an error.

        The query travels as a bound parameter, so nothing in it is executed here; ClickHouse's parser
        refuses a second statement ("Multi-statements are not allowed").
        """
        rows = client.query("SELECT formatQuerySingleLine({q:String})", parameters={"q": sql}).result_rows
        text = str(rows[0][0])
        if not text.strip():
            raise QueryRefused("the query is empty")
        return text

    async def close(self) -> None:
        def close() -> None:
            for client in self._clients:
                client.close()
        await asyncio.get_running_loop().run_in_executor(self._executor, close)
        self._executor.shutdown(wait=True)
