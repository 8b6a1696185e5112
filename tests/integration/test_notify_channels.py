"""Each channel against a real peer: a real Alertmanager (Debian package), SMTP through an in-process
aiosmtpd, a command hook; webhook, Slack and PagerDuty against a local server that records requests."""

from __future__ import annotations

import asyncio
import email
import sys
import time
from email.message import Message
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiosmtpd.controller import Controller

from tests.integration.notify_peers import RecordingServer, start_alertmanager
from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.receiver_configs import (
    AlertmanagerPushConfig,
    CommandConfig,
    EmailConfig,
    GlobalConfig,
    PagerdutyConfig,
    SlackConfig,
    WebhookConfig,
)
from watchkeeper.plumbing.broker import free_port
from watchkeeper.schemas.alerts import AlertEvent
from watchkeeper.sinks.channels.alertmanager import AlertmanagerChannel
from watchkeeper.sinks.channels.base import DeliveryError
from watchkeeper.sinks.channels.command import CommandChannel
from watchkeeper.sinks.channels.email import EmailChannel
from watchkeeper.sinks.channels.pagerduty import PagerdutyChannel
from watchkeeper.sinks.channels.slack import SlackChannel
from watchkeeper.sinks.channels.webhook import WebhookChannel

NOW = time.time()


def event(name: str, state: str = "firing", **labels: str) -> AlertEvent:
    labels = {"alertname": name, "severity": "critical", "service": "db", **labels}
    return AlertEvent(fingerprint=f"{abs(hash(tuple(sorted(labels.items())))):016x}"[:16], rule=name,
                      state=state, labels=labels, annotations={"summary": f"{name} on db"},  # type: ignore[arg-type]
                      starts_at=NOW - 60, ends_at=NOW - 1 if state == "resolved" else None, event_time=NOW,
                      generator_url="http://wk/graph")


def note(*alerts: AlertEvent, receiver: str = "team") -> Notification:
    return Notification(receiver=receiver, integration="x[0]", group_key='{}:{alertname="DiskFull"}',
                        group_labels={"alertname": "DiskFull"}, alerts=list(alerts), flush_time=NOW,
                        external_url="http://watchkeeper:8080")


async def with_session(fn: Any) -> Any:
    async with aiohttp.ClientSession() as session:
        return await fn(session)


@pytest.fixture
def server() -> Any:
    srv = RecordingServer().start()
    yield srv
    srv.stop()


def test_webhook_sends_alertmanagers_payload(server: RecordingServer) -> None:
    n = note(event("DiskFull", instance="a"), event("DiskFull", "resolved", instance="b"))
    cfg = WebhookConfig(url=server.url + "/hook", max_alerts=0)
    asyncio.run(with_session(lambda s: WebhookChannel("webhook[0]", cfg, GlobalConfig(), s).send(n)))
    (req,) = server.at("/hook")
    body = req.body
    assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "team"
    assert body["groupKey"] == '{}:{alertname="DiskFull"}' and body["groupLabels"] == {"alertname": "DiskFull"}
    assert body["commonLabels"] == {"alertname": "DiskFull", "severity": "critical", "service": "db"}
    assert [a["status"] for a in body["alerts"]] == ["firing", "resolved"]
    assert body["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z" and body["alerts"][1]["endsAt"].endswith("Z")
    assert body["alerts"][0]["labels"]["instance"] == "a" and body["truncatedAlerts"] == 0


def test_slack_and_pagerduty_payloads(server: RecordingServer) -> None:
    n = note(event("DiskFull", instance="a"))
    slack = SlackConfig(api_url=server.url + "/slack", channel="#ops", text="{{ .CommonAnnotations.summary }}")
    pd = PagerdutyConfig(routing_key="R1", url=server.url + "/pd")

    async def both(s: aiohttp.ClientSession) -> None:
        await SlackChannel("slack[0]", slack, GlobalConfig(), s).send(n)
        await PagerdutyChannel("pagerduty[0]", pd, GlobalConfig(), s).send(n)
        await PagerdutyChannel("pagerduty[0]", pd, GlobalConfig(), s).send(note(event("DiskFull", "resolved")))

    asyncio.run(with_session(both))
    (msg,) = server.at("/slack")
    att = msg.body["attachments"][0]
    assert msg.body["channel"] == "#ops" and att["color"] == "danger"
    # Alertmanager's default title: the common labels beyond the group's in parentheses.
    assert att["title"] == "[FIRING:1] DiskFull (a db critical)" and att["text"] == "DiskFull on db"
    assert att["title_link"] == "http://watchkeeper:8080/#/alerts?receiver=team"
    assert att["fallback"] == "[FIRING:1] DiskFull (a db critical) | http://watchkeeper:8080/#/alerts?receiver=team"
    assert msg.body["username"] == "Alertmanager" and "pretext" not in att
    trig, res = server.at("/pd")
    assert trig.body["routing_key"] == "R1" and trig.body["event_action"] == "trigger"
    assert trig.body["payload"]["severity"] == "critical" and trig.body["payload"]["summary"] == \
        "[FIRING:1] DiskFull (a db critical)"
    assert trig.body["client"] == "Alertmanager" and trig.body["client_url"] == \
        "http://watchkeeper:8080/#/alerts?receiver=team"
    assert res.body["event_action"] == "resolve" and res.body["dedup_key"] == trig.body["dedup_key"]


def test_http_errors_are_retryable_or_final(server: RecordingServer) -> None:
    cfg = WebhookConfig(url=server.url + "/hook")
    send = lambda s: WebhookChannel("webhook[0]", cfg, GlobalConfig(), s).send(note(event("A")))  # noqa: E731
    server.fail_until = time.time() + 60
    with pytest.raises(DeliveryError) as err:
        asyncio.run(with_session(send))
    assert err.value.retryable and "HTTP 500" in str(err.value)
    server.fail_until, server.status = 0, 400
    with pytest.raises(DeliveryError) as err:
        asyncio.run(with_session(send))
    assert not err.value.retryable and "HTTP 400" in str(err.value)
    closed = WebhookConfig(url=f"http://127.0.0.1:{free_port()}/hook")
    with pytest.raises(DeliveryError) as err:
        asyncio.run(with_session(lambda s: WebhookChannel("w", closed, GlobalConfig(), s).send(note(event("A")))))
    assert err.value.retryable


def test_real_alertmanager_receives_pushed_alerts(tmp_path: Path) -> None:
    proc, url = start_alertmanager(tmp_path)
    try:
        firing = event("DiskFull", instance="a")
        ch = lambda s: AlertmanagerChannel("alertmanager[0]", AlertmanagerPushConfig(url=url), s)  # noqa: E731

        async def push_and_read(n: Notification) -> list[dict[str, Any]]:
            async with aiohttp.ClientSession() as s:
                await ch(s).send(n)
                async with s.get(url + "/api/v2/alerts") as resp:
                    return await resp.json()  # type: ignore[no-any-return]

        alerts = asyncio.run(push_and_read(note(firing)))
        (got,) = alerts
        assert got["labels"] == firing.labels and got["annotations"] == firing.annotations
        assert got["status"]["state"] == "active" and got["generatorURL"] == "http://wk/graph"
        assert abs(_epoch(got["startsAt"]) - firing.starts_at) < 0.01
        after = asyncio.run(push_and_read(note(event("DiskFull", "resolved", instance="a"))))
        assert all(_epoch(a["endsAt"]) <= time.time() for a in after)  # resolved: ended, no longer active
    finally:
        proc.terminate()
        proc.wait(10)


def _epoch(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 OK"


def test_email_through_aiosmtpd_has_plain_and_html_parts() -> None:
    inbox = _Inbox()
    port = free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        cfg = EmailConfig.model_validate({"to": "oncall@example.com", "from": "wk@example.com",
                                          "smarthost": f"127.0.0.1:{port}", "require_tls": False})
        asyncio.run(EmailChannel("email[0]", cfg, GlobalConfig()).send(note(event("DiskFull", instance="a"))))
    finally:
        ctl.stop()
    ((sender, rcpt, msg),) = inbox.messages
    assert sender == "wk@example.com" and rcpt == ["oncall@example.com"]
    assert msg["Subject"] == "[FIRING:1] DiskFull (a db critical)"
    parts = {p.get_content_type(): p.get_payload(decode=True).decode() for p in msg.walk() if not p.is_multipart()}
    assert set(parts) == {"text/plain", "text/html"}
    assert "instance = a" in parts["text/plain"] and "<table" in parts["text/html"] and "summary = DiskFull on db" in \
        parts["text/html"] and "View in Alertmanager" in parts["text/html"]


def test_command_hook_gets_json_on_stdin_and_env(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    script = ("import json, os, sys; d = json.load(sys.stdin); "
              "env = {k: v for k, v in os.environ.items() if k.startswith('WK_')}; "
              f"json.dump({{'status': d['status'], 'env': env}}, open({str(out)!r}, 'w'))")
    cfg = CommandConfig(command=[sys.executable, "-c", script], timeout=20)
    asyncio.run(CommandChannel("command[0]", cfg).send(note(event("DiskFull", instance="a"))))
    got = orjson.loads(out.read_bytes())
    assert got["status"] == "firing"
    env = got["env"]
    assert env["WK_STATUS"] == "firing" and env["WK_ALERTNAME"] == "DiskFull" and env["WK_LABEL_SERVICE"] == "db"
    assert env["WK_ALERTS_COUNT"] == "1" and env["WK_RECEIVER"] == "team"


def test_command_hook_timeout_kills_it_and_a_failure_is_retryable(tmp_path: Path) -> None:
    slow = CommandConfig(command=["sleep", "30"], timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(DeliveryError) as err:
        asyncio.run(CommandChannel("command[0]", slow).send(note(event("A"))))
    assert err.value.retryable and "timed out" in str(err.value) and time.monotonic() - t0 < 10
    bad = CommandConfig(command=[sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"])
    with pytest.raises(DeliveryError) as err:
        asyncio.run(CommandChannel("command[0]", bad).send(note(event("A"))))
    assert "exited with 3: boom" in str(err.value)
