"""The one way reports and the dashboard open ClickHouse for reading.

In embedded mode only the sink process may open the chDB directory; readers go through its read-only
ClickHouse HTTP endpoint (`cfg.clickhouse_query_url`). Tests pass a chDB DSN of their own instead.
"""

from __future__ import annotations

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from watchkeeper.errors import WatchkeeperError


class ReaderError(WatchkeeperError):
    """ClickHouse could not be reached or refused a report query."""


def get_reader(dsn: str) -> Client:
    """A clickhouse-connect client for `dsn` (`http://host:8123/db` or `chdb:///dir?database=db`)."""
    try:
        return clickhouse_connect.get_client(dsn=dsn)
    except Exception as exc:
        raise ReaderError(
            f"cannot connect to ClickHouse at {dsn}: {exc}. Is `watchkeeper up` (or the ClickHouse sink) running?"
        ) from None
