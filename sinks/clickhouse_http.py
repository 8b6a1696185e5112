"""The read-only ClickHouse HTTP endpoint served by the process that owns the embedded chDB directory.

chDB allows one process per data directory, so readers (`watchkeeper sql`, reports, dashboard, curl, any
ClickHouse HTTP client) query through this endpoint while the sink writes. It follows ClickHouse's HTTP
interface: `GET|POST /?query=...` (a POST body is appended to `query`), `database`, `default_format`,
`param_<name>` query parameters, a trailing `FORMAT x` in the SQL, `/ping`, credentials as
`X-ClickHouse-User`/`X-ClickHouse-Key`, HTTP basic auth or `user`/`password`; errors come back with
ClickHouse's message and `X-ClickHouse-Exception-Code`.

What a query may do is decided in `readonly_sql` (ClickHouse's own parse of it) and the reader sessions'
settings (`readonly_queries`); this module refuses what is wrong with the request itself: a `Host` that
is not this endpoint (DNS rebinding), a cross-origin browser request (CSRF), wrong credentials, and URL
parameters that would change a setting.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from watchkeeper.plumbing.config import ClickHouseConfig
from watchkeeper.plumbing.errors import WatchkeeperError
from watchkeeper.sinks.readonly_sql import QueryRefused

QueryRunner = Callable[[str, str, str | None, dict[str, Any]], Awaitable[bytes]]

_FORMAT = re.compile(r"\s+FORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_TRAILING = re.compile(r"[\s;]+$")
_FORMAT_NAME = re.compile(r"^\w+$")
_CODE = re.compile(r"Code: (\d+)")

# URL parameters ClickHouse's HTTP interface reads for itself rather than as settings. Those the endpoint
# acts on: query, database, default_format, user, password, param_*. The rest are sent by clients
# (clickhouse-connect, clickhouse-go as Grafana uses it) and are accepted and ignored: the endpoint has no
# sessions, no compression and no progress headers, and always answers after the whole query. Grafana's
# ClickHouse data source always sends its query timeout as max_execution_time (ClickHouse's docs have a
# readonly user allow it with a `changeable_in_readonly` constraint): ignored too, the endpoint's own
# limit applies. Any other parameter is a setting, and refused.
_USED_PARAMS = frozenset({"query", "database", "default_format", "user", "password"})
_IGNORED_PARAMS = frozenset({
    "query_id", "session_id", "session_timeout", "session_check", "compress", "decompress",
    "wait_end_of_query", "buffer_size", "send_progress_in_http_headers", "http_headers_progress_interval_ms",
    "enable_http_compression", "client_protocol_version", "quota_key", "role", "max_execution_time",
})
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


class EndpointConfigError(WatchkeeperError):
    """The endpoint would be open to other machines without a password."""


@dataclass(frozen=True)
class EndpointOptions:
    """Who may talk to the endpoint: the address it is bound to, extra Host names, and credentials."""

    host: str = "127.0.0.1"
    port: int = 8123
    user: str = "default"
    password: str = ""
    allowed_hosts: tuple[str, ...] = field(default_factory=tuple)

    def check_exposure(self) -> None:
        """Refuse to serve off loopback without a password (anyone who reaches the port could read)."""
        if not is_loopback(self.host) and not self.password:
            raise EndpointConfigError(
                f"clickhouse.http_host is {self.host!r}, which other machines can reach: set "
                "clickhouse.http_password in watchkeeper.yaml (or the WK_CLICKHOUSE_HTTP_PASSWORD environment "
                "variable) so the ClickHouse HTTP endpoint asks for it, or bind it to 127.0.0.1"
            )

    def host_headers(self) -> frozenset[str] | None:
        """The `Host` values a request may carry (None: any, when bound to every address)."""
        if self.host in ("", "0.0.0.0", "::"):
            return None
        names = {*(_LOOPBACK_NAMES), _bracketed(self.host), *(h.lower() for h in self.allowed_hosts)}
        with_port = {f"{n}:{self.port}" for n in names}
        return frozenset(with_port | (names if self.port == 80 else set()))


def endpoint_options(c: ClickHouseConfig) -> EndpointOptions:
    """The endpoint's options from `watchkeeper.yaml`'s clickhouse section."""
    return EndpointOptions(host=c.http_host, port=c.http_port, user=c.http_user, password=c.http_password,
                           allowed_hosts=tuple(c.http_allowed_hosts))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host.lower()


def split_format(sql: str, default: str = "TabSeparated") -> tuple[str, str]:
    """Return (sql without a trailing FORMAT clause, the format to use)."""
    m = _FORMAT.search(sql)
    if m:
        return sql[: m.start()], m.group(1)
    return _TRAILING.sub("", sql), default


_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "0": "\0", "a": "\a", "v": "\v"}
_ESCAPED = re.compile(r"\\(x[0-9A-Fa-f]{2}|.)", re.DOTALL)


def unescape_parameter(value: str) -> str | None:
    """A `param_<name>` value as ClickHouse's HTTP interface reads it (TSV escaping, `\\N` is NULL).

    The reader's client escapes plain values again for chDB, so the value must be plain here.
    """
    if value == "\\N":
        return None

    def one(m: re.Match[str]) -> str:
        e = m.group(1)
        return chr(int(e[1:], 16)) if len(e) == 3 else _ESCAPES.get(e, e)
    return _ESCAPED.sub(one, value)


def _error(status: int, code: int, name: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, text=f"Code: {code}. DB::Exception: {message}. ({name})\n",
        headers={"X-ClickHouse-Exception-Code": str(code), **(headers or {})},
    )


def _request_problem(request: web.Request, options: EndpointOptions) -> web.Response | None:
    """A 403 for a request from somewhere other than this endpoint's own clients, else None."""
    host = request.headers.get("Host", "").lower()
    allowed = options.host_headers()
    if allowed is not None and host not in allowed:
        return _error(403, 497, "ACCESS_DENIED",
                      f"Host {host!r} is not this endpoint (use {options.host}:{options.port} or "
                      f"localhost:{options.port}; add other names to clickhouse.http_allowed_hosts)")
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() != f"http://{host}":
        return _error(403, 497, "ACCESS_DENIED",
                      f"cross-origin request from {origin!r} refused: the endpoint answers only its own origin")
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return _error(403, 497, "ACCESS_DENIED", f"cross-site browser request refused (Sec-Fetch-Site: {fetch_site})")
    return None


def _credentials(request: web.Request) -> tuple[str, str] | None:
    """The (user, password) a request carries, the ways ClickHouse's HTTP interface takes them."""
    if "X-ClickHouse-User" in request.headers or "X-ClickHouse-Key" in request.headers:
        return request.headers.get("X-ClickHouse-User", "default"), request.headers.get("X-ClickHouse-Key", "")
    auth = request.headers.get("Authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            user, _, password = base64.b64decode(auth[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return ("", "")
        return user, password
    if "user" in request.query or "password" in request.query:
        return request.query.get("user", "default"), request.query.get("password", "")
    return None


def _authorized(request: web.Request, options: EndpointOptions) -> bool:
    if not options.password:
        return True
    given = _credentials(request) or ("default", "")
    user_ok = hmac.compare_digest(given[0].encode(), options.user.encode())
    password_ok = hmac.compare_digest(given[1].encode(), options.password.encode())
    return user_ok and password_ok


def create_query_app(run_query: QueryRunner, options: EndpointOptions) -> web.Application:
    """The aiohttp app of the endpoint; `options.check_exposure()` is the caller's to run before binding."""

    @web.middleware
    async def guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        problem = _request_problem(request, options)
        if problem is not None:
            return problem
        return await handler(request)

    async def query(request: web.Request) -> web.Response:
        if not _authorized(request, options):
            return _error(401, 516, "AUTHENTICATION_FAILED",
                          f"{options.user}: Authentication failed: password is incorrect, or there is no user "
                          "with such name", {"WWW-Authenticate": 'Basic realm="ClickHouse"'})
        settings = sorted(k for k in request.query
                          if k not in _USED_PARAMS and k not in _IGNORED_PARAMS and not k.startswith("param_"))
        if settings:
            return _error(403, 164, "READONLY",
                          f"URL parameter(s) {', '.join(settings)} would change settings, which a request "
                          "can't do on this read-only endpoint")
        sql = request.query.get("query", "")
        if request.method == "POST" and request.can_read_body:
            body = (await request.read()).decode("utf-8", errors="replace")
            sql = f"{sql}\n{body}" if sql else body
        if not sql.strip():
            return web.Response(text="Ok.\n")
        sql, fmt = split_format(sql, request.query.get("default_format", "TabSeparated"))
        if not _FORMAT_NAME.match(fmt):
            return _error(400, 73, "UNKNOWN_FORMAT", f"unknown format {fmt!r}")
        parameters = {k[6:]: unescape_parameter(v) for k, v in request.query.items() if k.startswith("param_")}
        try:
            data = await run_query(sql, fmt, request.query.get("database"), parameters)
        except QueryRefused as exc:
            return _error(403, 164, "READONLY", f"Watchkeeper's read-only endpoint refuses this query: {exc}")
        except Exception as exc:
            text = str(exc).strip()
            m = _CODE.search(text)
            code = int(m.group(1)) if m else 0
            status = 403 if code in (164, 497) else 400 if code == 62 else 500
            headers = {"X-ClickHouse-Exception-Code": str(code)} if m else {}
            return web.Response(status=status, text=text + "\n", headers=headers)
        return web.Response(body=data, headers={"X-ClickHouse-Format": fmt},
                            content_type="text/plain", charset="utf-8")

    async def ping(_: web.Request) -> web.Response:
        return web.Response(text="Ok.\n")

    app = web.Application(client_max_size=16 * 2**20, middlewares=[guard])
    app.router.add_route("GET", "/", query)
    app.router.add_route("POST", "/", query)
    app.router.add_get("/ping", ping)
    return app
