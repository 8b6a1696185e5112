"""Acknowledging over HTTP as the runbooks do (`POST /api/v2/alerts/acknowledge` on the dashboard's server),
from the CLI, and what the page reads back: one store for all three, behind the dashboard's origin and token
rules. Served as `watchkeeper dashboard` serves it (a real aiohttp listener); no ClickHouse is needed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests.conftest import write_config
from watchkeeper.cli import main
from watchkeeper.commands.dashboard import dashboard_settings
from watchkeeper.core.notify.escalation import EscalationState
from watchkeeper.dashboard import create_dashboard_app
from watchkeeper.plumbing.broker import free_port
from watchkeeper.plumbing.config import Config
from watchkeeper.schemas.alerts import AlertEvent
from watchkeeper.sinks.ack_store import AckStore, ack_store_path
from watchkeeper.sinks.escalation_store import EscalationStore
from watchkeeper.sinks.notify_store import NotifyStore, store_paths

TOKEN = "ack-T0ken-5e9a77c1"
PATH = "/api/v2/alerts/acknowledge"


def _firing(cfg: Config, fp: str, name: str, starts: float) -> AlertEvent:
    a = AlertEvent(fingerprint=fp, rule=name, state="firing", labels={"alertname": name, "instance": "web-1"},
                   starts_at=starts, event_time=starts)
    store = NotifyStore(store_paths(cfg.data_path)[0])
    store.put_alerts([a])
    store.close()
    return a


async def _serve(cfg: Config) -> AsyncIterator[str]:
    runner = web.AppRunner(create_dashboard_app(dashboard_settings(cfg, "http://127.0.0.1:9/unused")))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    return Config(data_dir=str(tmp_path / "data"))


@pytest.fixture
async def dash(cfg: Config) -> AsyncIterator[str]:
    async for url in _serve(cfg):
        yield url


@pytest.fixture
async def token_dash(cfg: Config) -> AsyncIterator[str]:
    cfg.dashboard.token = TOKEN
    async for url in _serve(cfg):
        yield url


async def _post(url: str, body: Any, **headers: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.post(
            url + PATH, data=body if isinstance(body, bytes) else orjson.dumps(body),
            headers={"Content-Type": "application/json", **headers}) as r:
        raw = await r.read()
        try:
            return r.status, orjson.loads(raw)
        except orjson.JSONDecodeError:
            return r.status, {"text": raw.decode()}


def _stored(cfg: Config) -> list[str]:
    path = ack_store_path(cfg.data_path)
    if not path.exists():
        return []
    store = AckStore(path)
    try:
        return [a.target for a in store.all()]
    finally:
        store.close()


async def test_acknowledge_by_fingerprint_and_by_alertmanager_matchers(cfg: Config, dash: str) -> None:
    _firing(cfg, "00aa", "DiskFull", time.time() - 60)
    status, body = await _post(dash, {"fingerprint": "00aa", "comment": "cleaning /var", "createdBy": "alice",
                                      "expires": "2h"})
    assert status == 201, body
    assert body["covers"] == ["00aa"] and body["by"] == "alice" and body["expiresAt"] is not None
    status, body = await _post(dash, {"matchers": [{"name": "alertname", "value": "Disk.*", "isRegex": True},
                                                   'instance!="db-1"'], "comment": "on it"})
    assert status == 201, body
    assert body["covers"] == ["00aa"] and body["by"] == "dashboard" and body["expiresAt"] is None
    assert _stored(cfg) == ["00aa", '{alertname=~"Disk.*",instance!="db-1"}']
    async with aiohttp.ClientSession() as http, http.get(dash + "/api/acks") as r:
        page = await r.json()
    assert page["by_alert"]["00aa"]["by"] == "alice"  # shown beside the alert: the first ack that covers it
    assert [a["target"] for a in page["acks"]] == _stored(cfg)


@pytest.mark.parametrize(("body", "error"), [
    (b"not json", "bad acknowledgement"),
    ({"fingerprint": "00aa"}, "comment"),
    ({"fingerprint": "00aa", "comment": "x", "matchers": ["a=b"]}, "either a fingerprint or matchers"),
    ({"comment": "x"}, "either a fingerprint or matchers"),
    ({"matchers": ["a=~("], "comment": "x"}, "invalid regular expression"),
    ({"fingerprint": "00aa", "comment": "x", "expires": "soon"}, "bad acknowledgement"),
    ({"fingerprint": "00aa", "comment": "x", "who": "me"}, "bad acknowledgement"),
])
async def test_a_bad_acknowledgement_is_a_400_that_says_why_and_stores_nothing(
        cfg: Config, dash: str, body: Any, error: str) -> None:
    status, answer = await _post(dash, body)
    assert status == 400 and error in answer["error"]
    assert _stored(cfg) == []


async def test_other_sites_cannot_acknowledge_but_the_dashboard_page_can(cfg: Config, dash: str) -> None:
    ack = {"fingerprint": "00aa", "comment": "x"}
    status, _ = await _post(dash, ack, Origin="https://evil.example")
    assert status == 403
    status, _ = await _post(dash, ack, **{"Sec-Fetch-Site": "cross-site"})
    assert status == 403
    status, _ = await _post(dash, ack, Host="evil.example")
    assert status == 403
    assert _stored(cfg) == []
    status, _ = await _post(dash, ack, Origin=dash, **{"Sec-Fetch-Site": "same-origin"})  # the page's button
    assert status == 201 and _stored(cfg) == ["00aa"]


async def test_with_a_token_the_token_is_required_and_origins_still_checked(cfg: Config, token_dash: str) -> None:
    ack = {"fingerprint": "00aa", "comment": "x"}
    status, _ = await _post(token_dash, ack)
    assert status == 401
    status, _ = await _post(token_dash, ack, Authorization="Bearer wrong")
    assert status == 401
    status, _ = await _post(token_dash, ack, Authorization=f"Bearer {TOKEN}", Origin="https://evil.example")
    assert status == 403
    assert _stored(cfg) == []
    status, _ = await _post(token_dash, ack, Authorization=f"Bearer {TOKEN}")
    assert status == 201 and _stored(cfg) == ["00aa"]


async def test_escalation_states_are_listed_for_the_page(cfg: Config, dash: str) -> None:
    st = EscalationState('{}:{alertname="Down"}', "ops-tech", 2, 1_800_000_000.0, history=[(1, 1_799_999_100.0),
                                                                                        (2, 1_800_000_000.0)])
    store = EscalationStore(store_paths(cfg.data_path)[0])
    store.put(st)
    store.close()
    async with aiohttp.ClientSession() as http, http.get(dash + "/api/acks") as r:
        page = await r.json()
    (esc,) = page["escalations"]
    assert esc["text"] == "level 2 since 08:00 UTC, not acknowledged"
    assert [h["level"] for h in esc["history"]] == [1, 2]


def test_cli_ack_ls_and_expire(cfg: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(write_config(cfg, tmp_path / "watchkeeper.yaml"))
    _firing(cfg, "00bb", "HighCPU", time.time() - 60)
    assert main(["ack", "--config", path, "00bb", "--comment", "scaling out", "--by", "bob", "--expires", "1h"]) == 0
    out = capsys.readouterr().out
    ack_id = out.split()[0]
    assert "covers 00bb HighCPU" in out
    assert main(["ack", "--config", path, "--matcher", "alertname=HighCPU", "--matcher", 'instance=~"web-.*"',
                 "--comment", "same"]) == 0
    assert "covers 00bb" in capsys.readouterr().out
    assert main(["ack", "--config", path, "ls"]) == 0
    listed = capsys.readouterr().out
    assert "scaling out" in listed and "bob" in listed and 'instance=~"web-.*"' in listed
    assert main(["ack", "--config", path, "expire", ack_id[:8]]) == 0
    assert main(["ack", "--config", path, "ls"]) == 0
    assert "scaling out" not in capsys.readouterr().out
    assert main(["ack", "--config", path, "ls", "--all"]) == 0
    assert "expired" in capsys.readouterr().out
    assert main(["ack", "--config", path, "00bb"]) == 1  # no comment
    assert "needs a comment" in capsys.readouterr().err
    assert main(["ack", "--config", path, "expire", "nope"]) == 1
