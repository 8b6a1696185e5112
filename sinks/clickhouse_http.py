"""The read-only ClickHouse HTTP endpoint served by the process that owns the embedded chDB directory.

chDB allows one process per data directory, so readers (`watchkeeper sql`, reports, dashboard, curl, any
ClickHouse HTTP client) query through this endpoint while the sink writes. It follows ClickHouse's HTTP
interface: `GET|POST /?query=...` (a POST body is appended to `query`), `database`, `default_format`,
a trailing `FORMAT x` in the SQL, `/ping`; errors come back as HTTP 500 with ClickHouse's message.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp import web

QueryRunner = Callable[[str, str, str | None], Awaitable[bytes]]

_FORMAT = re.compile(r"\s+FORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_TRAILING = re.compile(r"[\s;]+$")


def split_format(sql: str, default: str = "TabSeparated") -> tuple[str, str]:
    """Return (sql without a trailing FORMAT clause, the format to use)."""
    m = _FORMAT.search(sql)
    if m:
        return sql[: m.start()], m.group(1)
    return _TRAILING.sub("", sql), default


def create_query_app(run_query: QueryRunner) -> web.Application:
    async def query(request: web.Request) -> web.Response:
        sql = request.query.get("query", "")
        if request.method == "POST" and request.can_read_body:
            body = (await request.read()).decode("utf-8", errors="replace")
            sql = f"{sql}\n{body}" if sql else body
        if not sql.strip():
            return web.Response(text="Ok.\n")
        sql, fmt = split_format(sql, request.query.get("default_format", "TabSeparated"))
        try:
            data = await run_query(sql, fmt, request.query.get("database"))
        except Exception as exc:
            text = str(exc).strip()
            code = re.search(r"Code: (\d+)", text)
            headers = {"X-ClickHouse-Exception-Code": code.group(1)} if code else {}
            return web.Response(status=500, text=text + "\n", headers=headers)
        return web.Response(body=data, headers={"X-ClickHouse-Format": fmt},
                            content_type="text/plain", charset="utf-8")

    async def ping(_: web.Request) -> web.Response:
        return web.Response(text="Ok.\n")

    app = web.Application(client_max_size=16 * 2**20)
    app.router.add_route("GET", "/", query)
    app.router.add_route("POST", "/", query)
    app.router.add_get("/ping", ping)
    return app
