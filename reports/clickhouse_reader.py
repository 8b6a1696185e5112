"""The one way reports and the dashboard open ClickHouse for reading.

In embedded mode only the sink process may open the chDB directory; readers go through its read-only
ClickHouse HTTP endpoint (`cfg.clickhouse_query_url`). Tests pass a chDB DSN of their own instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from watchkeeper.core.secrets import mask_dsn, mask_urls_in_text
from watchkeeper.plumbing.errors import WatchkeeperError


class ReaderError(WatchkeeperError):
    """ClickHouse could not be reached or refused a report query."""


def get_reader(dsn: str) -> Client:
    """A clickhouse-connect client for `dsn` (`http://host:8123/db` or `chdb:///dir?database=db`)."""
    try:
        return clickhouse_connect.get_client(dsn=dsn)
    except Exception as exc:
        raise ReaderError(
            f"cannot connect to ClickHouse at {mask_dsn(dsn)}: {mask_urls_in_text(str(exc))}. "
            "Is `watchkeeper up` (or the ClickHouse sink) running?"
        ) from None


_PLACEHOLDER = re.compile(r"\{(\w+):([^{}]+)\}")


def inline_parameters(sql: str, parameters: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """Turn ClickHouse's typed `{name:Type}` placeholders into client-side bound values.

    Server-side parameters travel as `param_<name>` URL arguments, which the embedded owner's read-only
    endpoint does not take; client-side binding (clickhouse-connect escapes every value) works against any
    ClickHouse HTTP interface and chDB alike. Times go as epoch milliseconds, so nothing is lost to a text
    format or a time zone; other values keep their declared type through a CAST.
    """
    if not parameters or not _PLACEHOLDER.search(sql):
        return sql, {}
    bound: dict[str, Any] = {}

    def replace(m: re.Match[str]) -> str:
        name, typ = m.group(1), m.group(2).strip()
        value = parameters[name]
        if typ.startswith("DateTime"):
            bound[name] = epoch_ms(value)
            return f"fromUnixTimestamp64Milli(toInt64(%({name})s), 'UTC')"
        bound[name] = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else value
        return f"CAST(%({name})s AS {typ})"

    return _PLACEHOLDER.sub(replace, sql.replace("%", "%%")), bound


def epoch_ms(t: datetime) -> int:
    """Milliseconds since the epoch; a naive time is UTC (as ClickHouse returns them)."""
    return round((t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp() * 1000)


def query_rows(client: Client, sql: str, parameters: Mapping[str, Any] | None = None) -> Sequence[Sequence[Any]]:
    """Rows of one read query, parameters bound client-side (see `inline_parameters`)."""
    text, bound = inline_parameters(sql, parameters)
    return client.query(text, parameters=bound or None).result_rows
