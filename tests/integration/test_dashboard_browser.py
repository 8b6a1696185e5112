"""The dashboard in a real headless Chromium: it loads, shows a firing alert, a chart renders; screenshot saved.

Here the alerts are inserted straight into the `alerts` table, so the page's content is exactly known;
`test_dashboard_kafka.py` sends one through Kafka and the ClickHouse sink instead.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import numpy as np
import pyarrow as pa
import pytest
from aiohttp import web

from tests import report_dataset as rd
from watchkeeper.commands.dashboard import dashboard_settings
from watchkeeper.dashboard import create_dashboard_app
from watchkeeper.plumbing.broker import free_port
from watchkeeper.plumbing.config import Config
from watchkeeper.reports.clickhouse_reader import get_reader

ARTIFACTS = Path(__file__).parent.parent.parent / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed (apt-get install chromium)")


def _alerts_table(rows: list[dict]) -> pa.Table:
    def col(k: str) -> list:
        return [r[k] for r in rows]

    ts = pa.timestamp("ms", tz="UTC")
    return pa.table({
        "fingerprint": col("fingerprint"), "rule": col("rule"), "state": col("state"), "severity": col("severity"),
        "labels": pa.array([list(r["labels"].items()) for r in rows], pa.map_(pa.string(), pa.string())),
        "annotations": pa.array([list(r["annotations"].items()) for r in rows], pa.map_(pa.string(), pa.string())),
        "value": pa.array(col("value"), pa.float64()),
        "starts_at": pa.array(col("starts_at"), ts), "ends_at": pa.array(col("ends_at"), ts),
        "event_time": pa.array(col("event_time"), ts), "source": col("source"),
    })


def _seed(dsn: str, now: datetime) -> int:
    client = get_reader(dsn)
    rd.create_tables(client)
    t = now - timedelta(minutes=7)
    alert = {"fingerprint": "a1", "rule": "DiskWillFillSoon", "severity": "critical", "value": 93.4, "source": "rule",
             "labels": {"alertname": "DiskWillFillSoon", "host": "db-1", "mount": "/var", "severity": "critical"},
             "annotations": {"summary": "Disk /var on db-1 is 93.4 % full"}, "starts_at": t, "ends_at": None}
    gone = {**alert, "fingerprint": "a2", "rule": "OldAlert", "labels": {"alertname": "OldAlert"}}
    rows = [
        {**alert, "state": "pending", "event_time": t - timedelta(minutes=5)},
        {**alert, "state": "firing", "event_time": t},
        {**gone, "state": "firing", "event_time": t - timedelta(hours=2)},
        {**gone, "state": "resolved", "event_time": t - timedelta(hours=1), "ends_at": t - timedelta(hours=1)},
        {**alert, "fingerprint": "a3", "rule": "HighLatency", "severity": "warning", "state": "pending", "value": 0.8,
         "labels": {"alertname": "HighLatency", "service": "checkout"}, "event_time": now - timedelta(seconds=40),
         "starts_at": now - timedelta(seconds=40), "annotations": {"summary": "p99 above 750 ms"}},
    ]
    client.insert_arrow("alerts", _alerts_table(rows))
    end = now.timestamp() // 600 * 600
    starts = np.arange(end - 2 * 86400, end, 60.0)
    rng = np.random.default_rng(7)
    cpu = 40 + 15 * np.sin(starts / 86400 * 2 * np.pi) + rng.normal(0, 2, starts.size)
    agg = rd.AggSeries("cpu_percent", {"host": "web-1"}, starts, 60.0, np.full(starts.size, 6, np.uint64),
                       cpu * 6, cpu - 3, cpu + 3, cpu)
    sli_ts = np.arange(end - 3 * 86400, now.timestamp(), 60.0)
    labels = {"sloth_id": "checkout-availability", "sloth_service": "checkout", "sloth_slo": "availability"}
    ds = rd.Dataset(
        samples=[
            rd.Series("slo:sli_error:ratio_rate5m", {**labels, "sloth_window": "5m"}, sli_ts,
                      np.full(sli_ts.size, 0.0004)),
            rd.Series("slo:objective:ratio", labels, sli_ts[-1:], np.array([0.999])),
            rd.Series("cpu_percent", {"host": "web-1"}, starts, cpu),
        ],
        aggregates=[agg],
    )
    rd.load(client, ds, replays=2)
    return agg.id


@pytest.fixture
async def dashboard_url(ch_dsn: str) -> AsyncIterator[tuple[str, int]]:
    sid = _seed(ch_dsn, datetime.now(UTC))
    silences = [{"id": "s1", "matchers": [{"name": "service", "value": "search", "isRegex": False}],
                 "createdBy": "oncall", "comment": "planned maintenance", "endsAt": "2026-12-01T00:00:00Z"}]
    app = create_dashboard_app(dashboard_settings(Config(), ch_dsn), silences=lambda: silences)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", sid
    finally:
        await runner.cleanup()


async def _chromium(*args: str) -> bytes:
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        proc = await asyncio.create_subprocess_exec(
            CHROMIUM or "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--window-size=1280,900", "--virtual-time-budget=5000", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=90)
    return out


async def test_dashboard_in_headless_chromium(dashboard_url: tuple[str, int]) -> None:
    base, sid = dashboard_url
    url = f"{base}/?series={sid:016x}&range=-24h"
    dom = (await _chromium("--dump-dom", url)).decode()
    assert 'class="pill firing">firing<' in dom
    assert "DiskWillFillSoon" in dom and "Disk /var on db-1 is 93.4 % full" in dom
    assert "host=db-1" in dom and "mount=/var" in dom
    assert re.search(r'<td title="since [^"]+">7m \d+s</td>', dom), "the firing alert's age"
    assert "HighLatency" in dom and 'class="pill pending">pending<' in dom
    assert "OldAlert" not in dom  # resolved: its latest state wins
    assert "checkout</b> / availability" in dom and "60.0 % left" in dom  # 0.04 % errors on a 0.1 % budget
    assert "planned maintenance" in dom
    points = re.search(r'data-points="(\d+)"', dom)
    assert points and int(points.group(1)) >= 200, "the chart drew the series"
    assert re.search(r'<path class="line" d="M[\d.]+,[\d.]+(L[\d.]+,[\d.]+){100,}', dom)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    await _chromium(f"--screenshot={shot}", url)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


async def test_healthz_metrics_and_api_errors(dashboard_url: tuple[str, int]) -> None:
    base, sid = dashboard_url
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/healthz") as r:
            assert r.status == 200 and await r.json() == {"status": "ok", "clickhouse": "ok"}
        async with http.get(f"{base}/api/chart?id=zz") as r:
            assert r.status == 400 and "16 hex digits" in (await r.json())["error"]
        async with http.get(f"{base}/api/chart?id={sid:016x}&from=-2h") as r:
            chart = await r.json()
            assert chart["name"] == "cpu_percent" and 100 <= len(chart["points"]) <= 240
        async with http.get(f"{base}/metrics") as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
            text = await r.text()
    assert 'watchkeeper_alerts{severity="critical",state="firing"} 1.0' in text
    assert 'watchkeeper_alerts{severity="warning",state="pending"} 1.0' in text
    assert "watchkeeper_clickhouse_up 1.0" in text
    age = re.search(r"^watchkeeper_last_window_age_seconds ([0-9.e+]+)$", text, re.M)
    assert age and 0 < float(age.group(1)) < 1200  # the newest window ended within the last 10 minutes
    assert re.search(r'watchkeeper_stored_rows\{table="alerts"\} 5\.0', text)
    assert 'watchkeeper_dashboard_requests_total{code="200",path="/healthz"}' in text
    assert "watchkeeper_sink_errors_total" in text or "# HELP watchkeeper_sink_errors_total" in text


async def test_dashboard_survives_clickhouse_down() -> None:
    app = create_dashboard_app(dashboard_settings(Config(), f"http://127.0.0.1:{free_port()}"))
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/api/overview") as r:
                body = await r.json()
                assert r.status == 200 and body["clickhouse"] == "error" and body["alerts"] == []
            async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                assert (await r.json())["clickhouse"] == "unreachable"
            async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                assert "watchkeeper_clickhouse_up 0.0" in await r.text()
    finally:
        await runner.cleanup()


class _DevTools:
    """A few Chrome DevTools Protocol calls over aiohttp's WebSocket client: evaluate, mouse, screenshot."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws, self.n = ws, 0

    async def call(self, method: str, **params: object) -> dict:
        self.n += 1
        await self.ws.send_json({"id": self.n, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json(timeout=30)
            if msg.get("id") == self.n:
                assert "error" not in msg, msg
                return msg.get("result", {})

    async def js(self, expression: str) -> object:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 15, show: str = "") -> object:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if value := await self.js(expression):
                return value
            await asyncio.sleep(0.2)
        seen = await self.js(show) if show else ""
        raise AssertionError(f"timed out waiting for {expression} (page: {seen})")


async def test_chart_hover_and_range_buttons(dashboard_url: tuple[str, int]) -> None:
    base, sid = dashboard_url
    port = free_port()
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        proc = await asyncio.create_subprocess_exec(
            CHROMIUM or "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--window-size=1280,900", f"--remote-debugging-port={port}", "about:blank",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            async with aiohttp.ClientSession() as http:
                targets: list[dict] = []
                for _ in range(100):
                    try:
                        async with http.get(f"http://127.0.0.1:{port}/json") as r:
                            targets = await r.json()
                        if any(t["type"] == "page" for t in targets):
                            break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.1)
                page = next(t for t in targets if t["type"] == "page")
                async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                    dt = _DevTools(ws)
                    # No auto-refresh during the interaction: a redraw would hide the hover mid-test.
                    await dt.call("Page.navigate", url=f"{base}/?series={sid:016x}&range=-24h&refresh=3600")
                    await dt.wait_for("document.querySelector('svg[data-points] path.line') !== null")
                    x, y = await dt.wait_for(
                        "(() => { const o = document.querySelector('.overlay'); o.scrollIntoView({block: 'center'});"
                        " const r = o.getBoundingClientRect();"
                        " return [r.left + r.width * 0.6, r.top + r.height / 2]; })()"
                    )
                    await dt.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
                    tip = await dt.wait_for(
                        "document.querySelector('.hover').getAttribute('visibility') === 'visible'"
                        " && document.querySelector('.tip').textContent"
                    )
                    assert re.fullmatch(r"\d\d-\d\d \d\d:\d\d  [\d.,]+  \([\d.,]+ … [\d.,]+\)", str(tip)), tip
                    day_points = int(str(await dt.js("document.querySelector('svg').dataset.points")))
                    await dt.js("document.querySelector('#ranges button[data-range=\"-1h\"]').click()")
                    # 300 buckets: 12 s each over an hour (one-minute windows fill at most 60), 4.8 min over a day.
                    hour_points = await dt.wait_for(
                        "document.querySelector('#ranges button.active').dataset.range === '-1h'"
                        " && document.querySelector('#chart-title').textContent.includes('step 12s')"
                        " && Number(document.querySelector('svg').dataset.points)",
                        show="document.querySelector('#chart-title').textContent + ' / ' +"
                        " document.querySelector('#errors').textContent",
                    )
                    assert 50 <= int(str(hour_points)) <= 61 and day_points >= 250
        finally:
            proc.terminate()
            await proc.wait()
