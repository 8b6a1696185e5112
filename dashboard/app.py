"""The dashboard's aiohttp application: one HTML page plus JSON endpoints it polls, `/healthz` and `/metrics`.

The page is static (HTML, CSS and vanilla JavaScript drawing SVG; no CDN, the machine may be offline); all
figures come from ClickHouse through `reports.clickhouse_reader.get_reader`, queried in a worker thread one at
a time (clickhouse-connect is blocking, and embedded chDB is one engine per process).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import orjson
from aiohttp import web
from clickhouse_connect.driver.client import Client
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from watchkeeper.dashboard import queries
from watchkeeper.dashboard.acks import acknowledge_handler, acks_handler
from watchkeeper.plumbing import self_metrics
from watchkeeper.plumbing.config import DashboardConfig
from watchkeeper.plumbing.http_guard import GuardOptions, check_listener, guard_middleware
from watchkeeper.plumbing.log_filters import KNOWN_SECRETS, redact
from watchkeeper.plumbing.rule_failure_files import read_failures
from watchkeeper.reports.clickhouse_reader import get_reader
from watchkeeper.reports.timerange import parse_range

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
T = TypeVar("T")
# A silence as the delivery engine describes it: id, matchers, createdBy, comment, startsAt, endsAt (Alertmanager's
# v2 silence shape). The provider may be sync or async; without one the dashboard lists none.
SilenceProvider = Callable[[], list[dict[str, Any]] | Awaitable[list[dict[str, Any]]]]



class Reader:
    """A ClickHouse client opened on first use, with queries serialized on a worker thread."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        async with self._lock:
            return await asyncio.to_thread(self._call, fn, *args)

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._client is None:
            self._client = get_reader(self.dsn)
        try:
            return fn(self._client, *args)
        except Exception:
            self._client = None  # reconnect next time: the server may have restarted
            raise


READER: web.AppKey[Reader] = web.AppKey("reader", Reader)
SILENCES: web.AppKey[SilenceProvider | None] = web.AppKey("silences")
REFRESH: web.AppKey[float] = web.AppKey("refresh", float)
DATA_PATH: web.AppKey[Path] = web.AppKey("data_path", Path)
SESSION_COOKIE = "wk_dashboard_session"


@dataclass(frozen=True)
class DashboardSettings:
    """What the dashboard reads of `watchkeeper.yaml`, picked by the command that starts it (as Prometheus'
    rule manager gets its `ManagerOptions`), so the dashboard depends on these and not on the whole file."""

    dashboard: DashboardConfig
    reader_dsn: str  # the ClickHouse it reads: the embedded owner's read-only endpoint or the server
    data_path: Path  # acknowledgements and the rules agent's failure files live under it


def create_dashboard_app(settings: DashboardSettings, silences: SilenceProvider | None = None) -> web.Application:
    """The dashboard as an aiohttp app (`watchkeeper dashboard` serves it; `watchkeeper up` can mount it too).

    Off loopback `dashboard.token` is required; pages of other sites and foreign `Host`s are refused always
    (`plumbing.http_guard`).
    """
    d = settings.dashboard
    check_listener("dashboard", d.host, d.token, "WK_DASHBOARD_TOKEN")
    guard = GuardOptions("dashboard", d.host, d.token, tuple(d.allowed_hosts), public_paths=frozenset({"/healthz"}),
                         allow_navigation=True, cookie_name=SESSION_COOKIE, realm="watchkeeper dashboard")
    app = web.Application(middlewares=[_metrics_middleware, guard_middleware(guard)])
    KNOWN_SECRETS.add_url(settings.reader_dsn)
    app[READER] = Reader(settings.reader_dsn)
    app[SILENCES] = silences
    app[REFRESH] = float(d.refresh_seconds)
    app[DATA_PATH] = settings.data_path
    app.router.add_get("/", _index)
    app.router.add_static("/static/", STATIC, name="static")
    app.router.add_get("/api/overview", _overview)
    app.router.add_get("/api/series", _series)
    app.router.add_get("/api/chart", _chart)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_post("/api/v2/alerts/acknowledge", acknowledge_handler(settings.data_path))  # dashboard/acks.py
    app.router.add_get("/api/acks", acks_handler(settings.data_path))
    return app


def _error_text(exc: Exception) -> str:
    """The first line of an error, without the DSN's password or any other configured secret."""
    return redact((str(exc).splitlines() or [type(exc).__name__])[0])


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _now() -> datetime:
    return datetime.now(UTC)


async def _index(request: web.Request) -> web.Response:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    html = html.replace("__REFRESH_SECONDS__", f"{request.app[REFRESH]:g}")
    return web.Response(text=html, content_type="text/html")


async def _overview(request: web.Request) -> web.Response:
    reader: Reader = request.app[READER]
    now = _now()
    body: dict[str, Any] = {"now": int(now.timestamp() * 1000), "clickhouse": "ok", "errors": []}
    for key, fn in (("ingest", queries.ingest_status), ("alerts", queries.active_alerts), ("slos", queries.slo_table)):
        try:
            body[key] = await reader.run(fn, now)
        except Exception as exc:
            log.warning("dashboard query %s failed: %s", key, exc)
            body["clickhouse"] = "error"
            body["errors"].append(f"{key}: {_error_text(exc)[:200]}")
            body[key] = {} if key == "ingest" else []
    body["silences"] = await _silences(request)
    body["skewed_sources"] = [{"source": name, "future_samples": n} for name, n in self_metrics.skewed_sources()]
    # The workers' rules' last evaluation failures (vmalert's rule view), newest first.
    failures = await asyncio.to_thread(read_failures, request.app[DATA_PATH])
    body["rule_failures"] = {"counts": failures.counts, "recent": [f.to_json() for f in reversed(failures.last())]}
    return _json(body)


async def _silences(request: web.Request) -> list[dict[str, Any]]:
    provider = request.app[SILENCES]
    if provider is None:
        return []
    try:
        result = provider()
        if inspect.isawaitable(result):
            result = await result
        return list(result)
    except Exception as exc:
        log.warning("silences unavailable: %s", exc)
        return []


async def _series(request: web.Request) -> web.Response:
    match = request.query.get("match", "")
    try:
        return _json(await request.app[READER].run(queries.series_list, _now(), match, 200, socket.gethostname()))
    except Exception as exc:
        return _json({"error": _error_text(exc)}, 503)


async def _chart(request: web.Request) -> web.Response:
    try:
        sid = int(request.query["id"], 16)
        tr = parse_range(request.query.get("from", "-6h"), request.query.get("to"), _now(), timedelta(hours=6))
        points = min(max(int(request.query.get("points", "240")), 10), 2000)
        fit = request.query.get("fit", "1") != "0"
    except (KeyError, ValueError) as exc:
        return _json({"error": f"bad chart request: {exc} (use ?id=<16 hex digits>&from=-6h&to=now)"}, 400)
    try:
        data = await request.app[READER].run(queries.series_chart, sid, tr.start, tr.end, points, fit)
    except Exception as exc:
        return _json({"error": _error_text(exc)}, 503)
    return _json(data)


async def _healthz(request: web.Request) -> web.Response:
    """Liveness: the dashboard answers. Whether ClickHouse does is reported beside it, not as a failure."""
    try:
        await asyncio.wait_for(request.app[READER].run(lambda c: c.command("SELECT 1")), timeout=5)
        ch = "ok"
    except Exception:
        ch = "unreachable"
    return _json({"status": "ok", "clickhouse": ch})


class _StoreCollector(Collector):
    """Metrics computed from ClickHouse at scrape time (stored rows, active alerts, notification outcomes)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def collect(self) -> Any:
        v = self.values
        rows = GaugeMetricFamily("watchkeeper_stored_rows", "Rows in each ClickHouse table (active parts).",
                                 labels=["table"])
        for table, n in sorted(v.get("rows", {}).items()):
            rows.add_metric([table], n)
        yield rows
        alerts = GaugeMetricFamily("watchkeeper_alerts", "Alerts by current state and severity.",
                                   labels=["state", "severity"])
        counts: dict[tuple[str, str], int] = {}
        for a in v.get("alerts", []):
            counts[(a["state"], a["severity"])] = counts.get((a["state"], a["severity"]), 0) + 1
        for (state, severity), n in sorted(counts.items()):
            alerts.add_metric([state, severity], n)
        yield alerts
        notes = GaugeMetricFamily("watchkeeper_notifications", "Notification attempts by receiver and outcome.",
                                  labels=["receiver", "status"])
        for receiver, status, n in v.get("notifications", []):
            notes.add_metric([receiver, status], n)
        yield notes
        ingest = v.get("ingest", {})
        yield GaugeMetricFamily("watchkeeper_ingest_samples_per_second", "Samples stored per second, last 5 min.",
                                value=ingest.get("samples_per_second", 0.0))
        age = ingest.get("last_sample_age_seconds")
        yield GaugeMetricFamily("watchkeeper_last_sample_age_seconds", "Age of the newest stored sample.",
                                value=float("nan") if age is None else age)
        window_age = ingest.get("last_window_age_seconds")
        yield GaugeMetricFamily(
            "watchkeeper_last_window_age_seconds",
            "Time since the end of the newest stored window aggregate (window close latency plus sink flush).",
            value=float("nan") if window_age is None else window_age,
        )
        yield GaugeMetricFamily("watchkeeper_clickhouse_up", "1 if ClickHouse answered this scrape.",
                                value=0.0 if v.get("error") else 1.0)


async def _metrics(request: web.Request) -> web.Response:
    values: dict[str, Any]
    try:
        values = await request.app[READER].run(queries.self_metric_values, _now())
    except Exception as exc:
        values = {"error": _error_text(exc)}
    store = CollectorRegistry(auto_describe=False)
    store.register(_StoreCollector(values))
    body = self_metrics.exposition() + generate_latest(store)  # all processes' files under `watchkeeper up`
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@web.middleware
async def _metrics_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    route = request.match_info.route.resource
    path = route.canonical if route is not None else "other"
    began = time.perf_counter()
    code = 500
    try:
        response = await handler(request)
        code = response.status
        return response
    except web.HTTPException as exc:
        code = exc.status
        raise
    finally:
        self_metrics.HTTP_REQUESTS.labels(path, str(code)).inc()
        self_metrics.HTTP_LATENCY.labels(path).observe(time.perf_counter() - began)
