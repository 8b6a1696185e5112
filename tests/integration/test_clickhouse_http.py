"""The read-only ClickHouse HTTP endpoint of the chDB owner, as curl, `watchkeeper sql` and
clickhouse-connect's own HTTP client use it (its attacks are in tests/security)."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import clickhouse_connect
import pytest
from aiohttp import web

from watchkeeper.commands.sql import query as sql_query
from watchkeeper.plumbing.broker import free_port
from watchkeeper.plumbing.config import Config
from watchkeeper.sinks.clickhouse_http import EndpointOptions, create_query_app, split_format
from watchkeeper.sinks.clickhouse_sink import ClickHouse


@pytest.fixture
def endpoint(ch_dsn: str) -> Iterator[int]:
    port = free_port()
    ready = threading.Event()
    stop: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def serve() -> None:
        ch = ClickHouse(ch_dsn)
        await ch.open()
        await ch._run(ch.writer.command, "INSERT INTO alerts (fingerprint, rule, state, starts_at, event_time) "
                                         "VALUES ('f1', 'HighCPU', 'firing', now(), now())")
        runner = web.AppRunner(create_query_app(ch.query, EndpointOptions(port=port)))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        done = asyncio.Event()
        stop.append((asyncio.get_running_loop(), done))
        ready.set()
        try:
            await done.wait()
        finally:
            await runner.cleanup()
            await ch.close()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    assert ready.wait(30)
    yield port
    loop, done = stop[0]
    loop.call_soon_threadsafe(done.set)
    thread.join(10)


def _get(port: int, **params: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/?{urllib.parse.urlencode(params)}", timeout=10) as r:
        return bytes(r.read())


def test_get_post_formats_and_errors(endpoint: int) -> None:
    assert _get(endpoint, query="SELECT rule, state FROM alerts") == b"HighCPU\tfiring\n"
    rows = json.loads(_get(endpoint, query="SELECT count() AS n FROM alerts FORMAT JSON"))
    assert rows["data"] == [{"n": 1}]
    assert _get(endpoint, query="SELECT 1", default_format="CSV") == b"1\n"
    req = urllib.request.Request(f"http://127.0.0.1:{endpoint}/", data=b"SELECT 2 + 2", method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.read() == b"4\n"
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(endpoint, query="INSERT INTO alerts (fingerprint) VALUES ('x')")
    assert err.value.code == 403 and b"READONLY" in err.value.read()
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(endpoint, query="SELECT nope FROM alerts")
    assert err.value.headers["X-ClickHouse-Exception-Code"] == "47"


def test_clickhouse_connect_http_client_and_sql_command(endpoint: int) -> None:
    client = clickhouse_connect.get_client(host="127.0.0.1", port=endpoint)
    assert client.query("SELECT rule, state FROM alerts").result_rows == [("HighCPU", "firing")]
    cfg = Config()
    cfg.clickhouse.http_port = endpoint
    assert sql_query(cfg, "SELECT count() FROM alerts") == b"1\n"


def test_split_format() -> None:
    assert split_format("SELECT 1 FORMAT JSON;") == ("SELECT 1", "JSON")
    assert split_format("SELECT 1;\n", "CSV") == ("SELECT 1", "CSV")
