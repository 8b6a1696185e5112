"""The runbooks' routing, `examples/alertmanager-runbook.yml`, end to end: the example loads as written, then
runs in the real notification sink (a subprocess, alerts in on the real tansu broker) with its endpoints
pointed at local peers: aiosmtpd for email, a recording server for Slack, a Twilio stand-in that checks
the Messages API. A P1 alert is emailed, posted to Slack and sent by SMS (after a 429 with Retry-After,
honoured); a second P1 alert of the same group an instant later reaches email and Slack, while its SMS is
held by the rate limit and recorded so; the P4 alerts become one digest email; every attempt is on
wk.notifications."""

from __future__ import annotations

import asyncio
import email
import signal
import time
from collections import Counter
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiosmtpd.controller import Controller

from tests.conftest import write_config
from tests.integration.kafka_io import consume_until
from tests.integration.notify_peers import RecordingServer
from tests.integration.sms_peers import TWILIO_SID, TWILIO_TOKEN, Answer, SmsProviderServer
from tests.integration.test_notify_sink import send, start_sink, wait_for
from watchkeeper.core.notify.config import load_notify_config_file
from watchkeeper.plumbing.broker import free_port
from watchkeeper.plumbing.config import Config
from watchkeeper.schemas.alerts import AlertEvent

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "alertmanager-runbook.yml"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 OK"

    def to(self, rcpt: str) -> list[Message]:
        return [m for r, m in list(self.messages) if rcpt in r]


def alert(name: str, severity: str, service: str, t: float, state: str = "firing", **labels: str) -> AlertEvent:
    labels = {"alertname": name, "severity": severity, "service": service, **labels}
    fp = f"{abs(hash(tuple(sorted(labels.items())))) % 16**16:016x}"
    return AlertEvent(fingerprint=fp, rule=name, state=state, labels=labels,  # type: ignore[arg-type]
                      annotations={"summary": f"{name} on {service}"}, starts_at=t,
                      ends_at=t + 1 if state == "resolved" else None, event_time=t, severity=severity)


def test_the_example_is_the_runbooks_routing() -> None:
    am = load_notify_config_file(str(EXAMPLE))
    p1, p2, p4 = am.route.routes
    assert [m.value for m in p1.matchers] == ["P1"] and p1.receiver == "oncall-page"
    assert sorted(k.split("[")[0] for k, _ in am.receivers["oncall-page"].integrations()) == ["email", "slack", "sms"]
    assert p4.receiver == "daily-digest" and p4.group_by == frozenset()
    assert (p4.group_interval, p4.repeat_interval) == (86400.0, 86400.0)
    assert am.route.receiver == "team-slack" and p2.receiver == "team-email-slack"


@pytest.fixture
def peers() -> Iterator[tuple[Inbox, int, RecordingServer, SmsProviderServer]]:
    inbox, port = Inbox(), free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    slack, sms = RecordingServer().start(), SmsProviderServer().start()
    yield inbox, port, slack, sms
    sms.stop()
    slack.stop()
    smtp.stop()


def local_copy(tmp: Path, smtp_port: int, slack: RecordingServer, sms: SmsProviderServer) -> Path:
    """The example with its endpoints on loopback, Twilio's test credentials, and the P1 group_interval
    shortened to 2 s so the second alert's flush comes within the test. Nothing else changes."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["global"].update(smtp_smarthost=f"127.0.0.1:{smtp_port}", smtp_require_tls=False,
                         slack_api_url=slack.url + "/slack")
    doc["route"]["routes"][0]["group_interval"] = "2s"
    (page,) = [r for r in doc["receivers"] if r["name"] == "oncall-page"]
    page["sms_configs"][0]["twilio"].update(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN, api_url=sms.url)
    out = tmp / "alertmanager.yml"
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def test_runbook_routing_end_to_end(wk_config: Config, tmp_path: Path,
                                    peers: tuple[Inbox, int, RecordingServer, SmsProviderServer]) -> None:
    inbox, smtp_port, slack, sms = peers
    wk_config.notify.alertmanager_config = str(local_copy(tmp_path, smtp_port, slack, sms))
    wk_config.notify.retry_initial_seconds = 0.1  # without Retry-After the retry would come within 0.1 s
    cfg_path = write_config(wk_config, tmp_path / "watchkeeper.yaml")
    sms.script.append(Answer(429, '{"code": 20429, "message": "Too Many Requests"}', {"Retry-After": "2"}))
    log = tmp_path / "sink.log"
    proc = start_sink(cfg_path, log)
    try:
        now = time.time()
        send(wk_config, [
            alert("DiskFull", "critical", "db", now - 60, instance="db-1"),  # P1: older than group_wait, at once
            alert("SlowQueries", "medium", "api", now - 60),  # P3: Slack #alerts
            alert("CertExpiresSoon", "low", "web", now - 7200),  # P4, older than the digest's group_wait
            alert("BackupOld", "low", "files", now - 7200),
        ])
        wait_for(lambda: len(sms.sms) == 1 and len(inbox.to("oncall@example.com")) == 1
                 and len(inbox.to("team@example.com")) == 1 and len(slack.requests) == 2, 60, proc, log)
        send(wk_config, [alert("DiskFull", "critical", "db", time.time() - 60, instance="db-2")])
        wait_for(lambda: len(inbox.to("oncall@example.com")) == 2 and len(slack.requests) == 3, 60, proc, log)
        time.sleep(1)  # a wrongly sent second SMS would arrive now
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)

    assert sms.violations == []
    (page,) = sms.sms  # one SMS: the second alert of the group was held
    assert page.to == "+14155550100" and page.form["From"] == "+14155550199"
    assert page.text == "FIRING P1 DiskFull service=db instance=db-1: DiskFull on db http://127.0.0.1:8080"
    (refused, accepted) = sms.attempts
    assert accepted[1] - refused[1] >= 2.0  # Retry-After: 2 honoured over the 0.1 s backoff

    first, second = inbox.to("oncall@example.com")
    assert first["Subject"] == "[FIRING:1] DiskFull db (db-1 P1 critical)"
    assert second["Subject"] == "[FIRING:2] DiskFull db (P1 critical)"
    (digest,) = inbox.to("team@example.com")
    assert digest["Subject"] == "Watchkeeper daily digest: 2 low-priority alerts"
    channels = Counter(r.body.get("channel") for r in slack.requests)
    assert channels == {"#oncall": 2, "#alerts": 1}

    recs = [orjson.loads(r.value) for r in asyncio.run(consume_until(
        wk_config.kafka.bootstrap, wk_config.kafka.topics.notifications,
        lambda rs: any(orjson.loads(r.value)["status"] == "held" for r in rs)))]
    page_sms = [(r["status"], r["error"]) for r in recs if r["receiver"] == "oncall-page" and
                r["integration"] == "sms[0]"]
    assert [s for s, _ in page_sms] == ["retrying", "sent", "held"]
    assert "HTTP 429" in page_sms[0][1] and page_sms[1][1].startswith("twilio SM")
    assert page_sms[2][1].startswith("held: this phone was told the group fires ") and \
        page_sms[2][1].endswith("at most one firing SMS per group per 1h")
    sent = Counter((r["receiver"], r["integration"]) for r in recs if r["status"] == "sent")
    assert sent == {("oncall-page", "email[0]"): 2, ("oncall-page", "slack[0]"): 2, ("oncall-page", "sms[0]"): 1,
                    ("team-slack", "slack[0]"): 1, ("daily-digest", "email[0]"): 1}
    assert TWILIO_TOKEN not in log.read_text() and all(TWILIO_TOKEN not in r["error"] for r in recs)
