"""The dashboard against the attacks of issue 16, served as `watchkeeper dashboard` serves it (an aiohttp
listener of `create_dashboard_app`) on real chDB.

Given a page of another site, expect its requests refused (its POST and DELETE above all, even on loopback),
a link from a notification still opening the page; given a foreign Host (DNS rebinding), refused; given a
token, a browser logged in by basic auth or once by `?token=` (an HttpOnly SameSite=Strict cookie, the token
leaving the URL), scripts by bearer; given a non-loopback bind without a token, no start.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import write_config
from watchkeeper.commands.dashboard import dashboard_settings
from watchkeeper.dashboard import create_dashboard_app
from watchkeeper.plumbing.broker import free_port
from watchkeeper.plumbing.config import Config
from watchkeeper.plumbing.http_guard import ListenerError

TOKEN = "dAsh-T0ken-5e9a77c1"


async def _serve(cfg: Config, dsn: str) -> AsyncIterator[str]:
    runner = web.AppRunner(create_dashboard_app(dashboard_settings(cfg, dsn)))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, cfg.dashboard.host, port).start()
    try:
        yield f"http://{cfg.dashboard.host}:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def open_dash(wk_config: Config, ch_dsn: str) -> AsyncIterator[str]:
    async for url in _serve(wk_config, ch_dsn):
        yield url


@pytest.fixture
async def token_dash(wk_config: Config, ch_dsn: str) -> AsyncIterator[str]:
    wk_config.dashboard.token = TOKEN
    async for url in _serve(wk_config, ch_dsn):
        yield url


async def _req(method: str, url: str, **headers: str) -> aiohttp.ClientResponse:
    headers = {k.replace("_", "-"): v for k, v in headers.items()}
    async with aiohttp.ClientSession() as http, http.request(method, url, headers=headers,
                                                              allow_redirects=False) as r:
        await r.read()
        return r


async def test_the_page_and_its_data_load_on_loopback_without_a_token(open_dash: str) -> None:
    for path in ("/", "/api/overview", "/healthz", "/metrics"):
        r = await _req("GET", open_dash + path)
        assert r.status == 200, path
    # The page's own fetches, as a browser sends them.
    r = await _req("GET", open_dash + "/api/overview", Sec_Fetch_Site="same-origin", Sec_Fetch_Mode="cors")
    assert r.status == 200


@pytest.mark.parametrize("method", ["POST", "DELETE", "PUT", "PATCH"])
@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
])
async def test_write_requests_from_other_origins_are_refused_even_on_loopback(
        open_dash: str, method: str, headers: dict[str, str]) -> None:
    for path in ("/api/silences", "/api/silences/abc", "/api/overview"):
        r = await _req(method, open_dash + path, **headers)
        assert r.status == 403, (method, path, r.status)


async def test_cross_site_reads_are_refused_but_a_link_from_slack_opens_the_page(open_dash: str) -> None:
    r = await _req("GET", open_dash + "/api/overview", Sec_Fetch_Site="cross-site", Sec_Fetch_Mode="cors",
                   Origin="http://evil.example")
    assert r.status == 403
    r = await _req("GET", open_dash + "/api/overview", Sec_Fetch_Site="cross-site", Sec_Fetch_Mode="no-cors")
    assert r.status == 403
    r = await _req("GET", open_dash + "/", Sec_Fetch_Site="cross-site", Sec_Fetch_Mode="navigate")
    assert r.status == 200
    # A navigation is a GET: a cross-site form POST navigating to the dashboard is still refused.
    r = await _req("POST", open_dash + "/", Sec_Fetch_Site="cross-site", Sec_Fetch_Mode="navigate")
    assert r.status == 403


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.1.nip.io"])
async def test_foreign_host_is_refused(open_dash: str, host: str) -> None:
    for path in ("/", "/api/overview", "/metrics"):
        r = await _req("GET", open_dash + path, Host=host)
        assert r.status == 403, path


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_a_token_is_asked_for_with_a_basic_auth_prompt(token_dash: str) -> None:
    for path in ("/", "/api/overview", "/api/series", "/metrics"):
        r = await _req("GET", token_dash + path)
        assert r.status == 401, path
        assert r.headers["WWW-Authenticate"].startswith("Basic ")  # the browser shows its login box
    assert (await _req("GET", token_dash + "/healthz")).status == 200  # liveness probes need none
    assert (await _req("GET", token_dash + "/", Authorization=_basic("sre", "wrong"))).status == 401
    assert (await _req("GET", token_dash + "/", Authorization=_basic("sre", TOKEN))).status == 200
    assert (await _req("GET", token_dash + "/metrics", Authorization=f"Bearer {TOKEN}")).status == 200
    assert (await _req("GET", token_dash + "/metrics", Authorization=f"Bearer {TOKEN}0")).status == 401


async def test_token_in_the_url_once_sets_a_strict_httponly_cookie(token_dash: str) -> None:
    r = await _req("GET", token_dash + f"/?token={TOKEN}&from=-1h")
    assert r.status == 303
    assert r.headers["Location"] == "/?from=-1h"  # the token leaves the address bar and the history
    cookie = SimpleCookie(r.headers["Set-Cookie"])
    [(name, morsel)] = cookie.items()
    assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/"
    assert TOKEN not in morsel.value  # a digest of the token, not the token
    async with aiohttp.ClientSession(cookies={name: morsel.value}) as http:
        for path in ("/", "/api/overview"):
            async with http.get(token_dash + path) as resp:
                assert resp.status == 200, path
    async with aiohttp.ClientSession(cookies={name: morsel.value + "0"}) as http, http.get(token_dash + "/") as resp:
        assert resp.status == 401
    assert (await _req("GET", token_dash + "/?token=wrong")).status == 401


async def test_with_a_token_cross_origin_writes_are_still_refused(token_dash: str) -> None:
    r = await _req("POST", token_dash + "/api/silences", Authorization=f"Bearer {TOKEN}",
                   Origin="http://evil.example")
    assert r.status == 403


def test_off_loopback_without_a_token_refuses_to_start(wk_config: Config, ch_dsn: str) -> None:
    wk_config.dashboard.host = "0.0.0.0"
    with pytest.raises(ListenerError) as err:
        create_dashboard_app(dashboard_settings(wk_config, ch_dsn))
    assert "dashboard.token" in str(err.value) and "WK_DASHBOARD_TOKEN" in str(err.value)
    wk_config.dashboard.token = TOKEN
    create_dashboard_app(dashboard_settings(wk_config, ch_dsn))  # built, not served: tests listen on loopback only


def test_watchkeeper_dashboard_off_loopback_says_how_to_set_the_token(wk_config: Config, tmp_path: Path) -> None:
    cfg = write_config(wk_config, tmp_path / "watchkeeper.yaml")
    env = {k: v for k, v in os.environ.items() if k != "WK_DASHBOARD_TOKEN"}
    proc = subprocess.run([sys.executable, "-m", "watchkeeper", "dashboard", "--host", "0.0.0.0", "--config",
                           str(cfg)], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "dashboard.token" in proc.stderr and "WK_DASHBOARD_TOKEN" in proc.stderr


def test_watchkeeper_up_refuses_an_open_push_listener_before_starting_anything(wk_config: Config,
                                                                               tmp_path: Path) -> None:
    wk_config.producers.push.host = "0.0.0.0"
    cfg = write_config(wk_config, tmp_path / "watchkeeper.yaml")
    env = {k: v for k, v in os.environ.items() if k not in ("WK_PUSH_TOKEN", "WK_DASHBOARD_TOKEN")}
    proc = subprocess.run([sys.executable, "-m", "watchkeeper", "up", "--no-broker", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 1
    assert "producers.push.token" in proc.stderr and "WK_PUSH_TOKEN" in proc.stderr
    assert not (wk_config.data_path / "logs").exists(), "nothing was started"


def test_faust_web_binds_loopback(wk_config: Config) -> None:
    from watchkeeper.agents.app import create_app
    from watchkeeper.commands.worker import worker_settings

    app = create_app(worker_settings(wk_config, agents=()))
    assert app.conf.web_enabled is False  # the worker serves nothing on 6066
    assert app.conf.web_bind == "127.0.0.1"  # and would listen on loopback only if it were turned on


async def test_a_real_browser_logs_in_once_with_the_token_in_the_url(token_dash: str) -> None:
    from tests.integration.test_dashboard_browser import CHROMIUM, _chromium

    if CHROMIUM is None:
        pytest.skip("Debian chromium not installed (apt-get install chromium)")
    # Headless Chromium follows the redirect, keeps the cookie, and the page's own fetches carry it.
    dom = (await _chromium("--dump-dom", f"{token_dash}/?token={TOKEN}")).decode()
    assert "Newest sample" in dom and "Firing" in dom, dom[-2000:]  # cards drawn from /api/overview's JSON
    without = (await _chromium("--dump-dom", f"{token_dash}/")).decode()
    assert "Newest sample" not in without  # a login box (401 with a Basic challenge), no page
