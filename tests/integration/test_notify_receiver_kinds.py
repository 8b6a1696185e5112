"""Alertmanager's other integrations delivered: each kind, configured as in an Alertmanager file, sends a
firing and a resolved notification to a loopback stand-in for its service (tests/integration/
service_peers.py), which checks the request as the service documents it; a 5xx is retryable, a 4xx final,
and no error text holds a secret."""

from __future__ import annotations

import asyncio
import base64
import shutil
import signal
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests.conftest import write_config
from tests.integration.kafka_io import consume_until
from tests.integration.notify_peers import ServedApp
from tests.integration.service_peers import (
    AWS_KEY,
    AWS_SECRET,
    DISCORD_PATH,
    OPSGENIE_KEY,
    PUSHOVER_TOKEN,
    PUSHOVER_USER,
    TEAMS_PATH,
    TEAMS_V2_PATH,
    TELEGRAM_TOKEN,
    VICTOROPS_KEY,
    WEBEX_TOKEN,
    WECHAT_CORP,
    WECHAT_SECRET,
    ServicePeer,
    sigv4_problem,
)
from tests.integration.test_notify_sink import send, start_sink, wait_for
from watchkeeper.core.notify.config import load_notify_config
from watchkeeper.core.notify.notification import Notification
from watchkeeper.plumbing.broker import free_port
from watchkeeper.plumbing.config import Config
from watchkeeper.plumbing.log_filters import redact
from watchkeeper.schemas.alerts import AlertEvent
from watchkeeper.sinks.channels import Channel, DeliveryError, build_channels
from watchkeeper.sinks.notify_sink import register_notify_secrets

NOW = 1_765_000_000.0
# Alertmanager's subject: group label values, then the other common labels' values in name order.
SUBJECT = "[FIRING:1] DiskFull (db-1 db critical)"
# Alertmanager's `__alertmanagerURL`: the alerts page of the receiver (Opsgenie's source, Pushover's url).
ALERTS_URL = "http://watchkeeper.example:8080/#/alerts?receiver=team"

# One receiver per kind, as a user writes it; `{url}` is the stand-in's address.
RECEIVERS = {
    "opsgenie": f"""
    opsgenie_configs:
      - api_key: {OPSGENIE_KEY}
        api_url: "{{url}}/opsgenie/"
        priority: P1
        tags: "db, storage"
        note: "paged by {{{{ .Receiver }}}}"
        details: {{runbook: "https://runbooks.example/{{{{ .CommonLabels.alertname }}}}"}}
        responders: [{{name: dba, type: team}}, {{name: "sre,net", type: teams}}, {{username: ann@example.com,
                      type: user}}]
        update_alerts: true""",
    "victorops": f"""
    victorops_configs:
      - api_key: {VICTOROPS_KEY}
        api_url: "{{url}}/victorops/"
        routing_key: "db-{{{{ .CommonLabels.service }}}}"
        custom_fields: {{team: storage}}""",
    "pushover": f"""
    pushover_configs:
      - user_key: {PUSHOVER_USER}
        token: {PUSHOVER_TOKEN}
        api_url: "{{url}}/pushover/1/messages.json"
        retry: 2m
        expire: 2h
        sound: siren""",
    "sns": f"""
    sns_configs:
      - api_url: "{{url}}/sns/"
        topic_arn: "arn:aws:sns:eu-west-1:123456789012:alerts"
        sigv4: {{access_key: {AWS_KEY}, secret_key: "{AWS_SECRET}"}}
        attributes: {{severity: "{{{{ .CommonLabels.severity }}}}"}}""",
    "msteams": """
    msteams_configs:
      - webhook_url: "{url}""" + TEAMS_PATH + '"',
    "msteamsv2": """
    msteamsv2_configs:
      - webhook_url: "{url}""" + TEAMS_V2_PATH + '''"
        title: "{{ .CommonLabels.alertname }} on {{ .CommonLabels.service }}"''',
    "discord": """
    discord_configs:
      - webhook_url: "{url}""" + DISCORD_PATH + '''"
        content: "{{ .CommonLabels.alertname }} needs a look"
        username: watchkeeper''',
    "telegram": f"""
    telegram_configs:
      - api_url: "{{url}}/telegram"
        bot_token: "{TELEGRAM_TOKEN}"
        chat_id: -1001234567890
        message_thread_id: 7""",
    "webex": f"""
    webex_configs:
      - api_url: "{{url}}/webex/v1/messages"
        room_id: "Y2lzY29zcGFyazovL3VzL1JPT00vYmJjZWIxYWQtNDNmMS0zYjU4LTkxNDctZjE0YmIwYzRkMTU0"
        http_config: {{authorization: {{credentials: {WEBEX_TOKEN}}}}}""",
    "wechat": f"""
    wechat_configs:
      - api_url: "{{url}}/wechat/cgi-bin/"
        corp_id: {WECHAT_CORP}
        api_secret: {WECHAT_SECRET}
        agent_id: "1000002"
        to_party: "2"
        send_resolved: true""",
}


def event(state: str = "firing", instance: str = "db-1", summary: str = "Disk 95% full on db") -> AlertEvent:
    labels = {"alertname": "DiskFull", "severity": "critical", "service": "db", "instance": instance}
    return AlertEvent(fingerprint=f"{abs(hash(instance)) % 16**16:016x}", rule="DiskFull", state=state,  # type: ignore[arg-type]
                      labels=labels, annotations={"summary": summary}, starts_at=NOW - 60,
                      ends_at=NOW - 1 if state == "resolved" else None, event_time=NOW, generator_url="http://wk/graph")


def note(*alerts: AlertEvent, integration: str = "x[0]") -> Notification:
    return Notification(receiver="team", integration=integration, group_key='{}:{alertname="DiskFull"}',
                        group_labels={"alertname": "DiskFull"}, alerts=list(alerts), flush_time=NOW,
                        external_url="http://watchkeeper.example:8080")


@pytest.fixture
def peer() -> Iterator[ServicePeer]:
    srv = ServicePeer().start()
    yield srv
    srv.stop()


def channel_of(kind: str, url: str, session: aiohttp.ClientSession, text: str | None = None) -> Channel:
    receiver = (text or RECEIVERS[kind]).replace("{url}", url)
    yaml = "route: {receiver: team}\nreceivers:\n  - name: team" + receiver + "\n"
    cfg = load_notify_config(yaml, "am.yml")
    register_notify_secrets(cfg)
    (ch,) = build_channels(cfg.receivers["team"], cfg.global_, session).values()
    return ch


def deliver(kind: str, url: str, *notes: Notification, text: str | None = None) -> list[Any]:
    """Send each notification through one channel (one session, as the sink has); results or errors."""
    async def run() -> list[Any]:
        async with aiohttp.ClientSession() as s:
            ch = channel_of(kind, url, s, text)
            out: list[Any] = []
            for n in notes:
                try:
                    out.append(await ch.send(n))
                except DeliveryError as exc:
                    out.append(exc)
            return out

    return asyncio.run(run())


def firing_then_resolved(kind: str, peer: ServicePeer) -> list[Any]:
    got = deliver(kind, peer.url, note(event()), note(event("resolved")))
    assert not [g for g in got if isinstance(g, DeliveryError)], got
    return got


def test_opsgenie_creates_then_closes_by_alias(peer: ServicePeer) -> None:
    got = firing_then_resolved("opsgenie", peer)
    create, message, description, close = peer.at("/opsgenie/")
    assert (create.method, create.path) == ("POST", "/opsgenie/v2/alerts")
    assert create.headers["Authorization"] == f"GenieKey {OPSGENIE_KEY}"
    b = create.json()
    assert b["message"] == SUBJECT and b["priority"] == "P1" and b["tags"] == ["db", "storage"]
    assert b["note"] == "paged by team" and b["details"] == {
        "runbook": "https://runbooks.example/DiskFull", "alertname": "DiskFull", "instance": "db-1", "service": "db",
        "severity": "critical"}
    assert b["responders"] == [{"name": "dba", "type": "team"}, {"type": "team", "name": "sre"},
                               {"type": "team", "name": "net"}, {"username": "ann@example.com", "type": "user"}]
    assert b["description"].startswith("Disk 95% full on db\nAlerts Firing:")
    assert " - instance = db-1" in b["description"]
    assert b["source"] == ALERTS_URL and len(b["alias"]) == 64
    assert (message.method, message.path) == ("PUT", f"/opsgenie/v2/alerts/{b['alias']}/message")
    assert description.json() == {"description": b["description"]}
    assert (close.method, close.path, close.query) == ("POST", f"/opsgenie/v2/alerts/{b['alias']}/close",
                                                       {"identifierType": "alias"})
    assert close.json() == {"source": ALERTS_URL} and got[0].startswith("opsgenie request r")


def test_opsgenie_message_is_capped_at_130_characters(peer: ServicePeer) -> None:
    text = RECEIVERS["opsgenie"] + "\n        message: '{{ .CommonAnnotations.summary }}'"
    (ok,) = deliver("opsgenie", peer.url, note(event(summary="x" * 400)), text=text)
    assert not isinstance(ok, DeliveryError)
    msg = peer.at("/opsgenie/v2/alerts")[0].json()["message"]
    assert len(msg) == 130 and msg.endswith("…")


def test_victorops_critical_then_recovery_on_one_entity(peer: ServicePeer) -> None:
    firing_then_resolved("victorops", peer)
    trigger, recovery = peer.at("/victorops/")
    assert trigger.path == f"/victorops/{VICTOROPS_KEY}/db-db" and trigger.method == "POST"
    t, r = trigger.json(), recovery.json()
    assert t["message_type"] == "CRITICAL" and r["message_type"] == "RECOVERY" and t["entity_id"] == r["entity_id"]
    assert t["entity_display_name"] == SUBJECT and t["team"] == "storage"
    assert t["state_message"].startswith("Disk 95% full on db\nAlerts Firing:")
    assert t["monitoring_tool"] == "Alertmanager"  # victorops.default.monitoring_tool, as Alertmanager's


def test_victorops_unknown_message_type_still_pages(peer: ServicePeer) -> None:
    text = RECEIVERS["victorops"] + "\n        message_type: PANIC"
    deliver("victorops", peer.url, note(event()), text=text)
    assert peer.at("/victorops/")[0].json()["message_type"] == "CRITICAL"


def test_pushover_emergency_while_firing_normal_when_resolved(peer: ServicePeer) -> None:
    firing_then_resolved("pushover", peer)
    firing, resolved = peer.at("/pushover/")
    assert firing.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    f, r = firing.form(), resolved.form()
    assert (f["token"], f["user"]) == (PUSHOVER_TOKEN, PUSHOVER_USER)
    assert f["priority"] == "2" and (f["retry"], f["expire"]) == ("120", "7200") and f["sound"] == "siren"
    assert f["title"] == SUBJECT and f["url"] == ALERTS_URL
    assert r["priority"] == "0" and "retry" not in r and r["title"] == "[RESOLVED] DiskFull (db-1 db critical)"


def test_pushover_message_capped_at_1024(peer: ServicePeer) -> None:
    many = note(*[event(instance=f"db-{i}") for i in range(40)])
    (ok,) = deliver("pushover", peer.url, many)
    assert not isinstance(ok, DeliveryError)
    assert len(peer.at("/pushover/")[0].form()["message"]) == 1024


def test_sns_publish_is_sigv4_signed_with_topic_subject_and_attributes(peer: ServicePeer) -> None:
    got = firing_then_resolved("sns", peer)
    firing, resolved = peer.at("/sns/")
    assert sigv4_problem(firing, AWS_SECRET, "sns") == ""
    assert "/eu-west-1/sns/aws4_request" in firing.headers["Authorization"]
    f = firing.form()
    assert f["Action"] == "Publish" and f["TopicArn"] == "arn:aws:sns:eu-west-1:123456789012:alerts"
    assert f["Subject"] == SUBJECT and f["Message"].startswith("Disk 95% full on db\n\nAlerts Firing:")
    assert (f["MessageAttributes.entry.1.Name"], f["MessageAttributes.entry.1.Value.StringValue"]) == \
        ("severity", "critical")
    assert resolved.form()["Subject"] == "[RESOLVED] DiskFull (db-1 db critical)" and got[0].startswith("MessageId ")


def test_sns_wrong_secret_is_refused_by_the_signature_check(peer: ServicePeer) -> None:
    text = RECEIVERS["sns"].replace(AWS_SECRET, "not-the-secret-key")
    (err,) = deliver("sns", peer.url, note(event()), text=text)
    assert isinstance(err, DeliveryError) and not err.retryable
    assert "SignatureDoesNotMatch" in str(err) and "not-the-secret-key" not in redact(str(err))


def test_sns_to_a_phone_has_no_subject(peer: ServicePeer) -> None:
    text = f"""
    sns_configs:
      - api_url: "{{url}}/sns/"
        phone_number: "+14155550100"
        sigv4: {{region: eu-west-1, access_key: {AWS_KEY}, secret_key: "{AWS_SECRET}"}}"""
    (ok,) = deliver("sns", peer.url, note(event()), text=text)
    assert not isinstance(ok, DeliveryError), ok
    f = peer.at("/sns/")[0].form()
    assert f["PhoneNumber"] == "+14155550100" and "Subject" not in f and "TopicArn" not in f


def test_msteams_message_card_red_then_green(peer: ServicePeer) -> None:
    firing_then_resolved("msteams", peer)
    firing, resolved = peer.at("/teams/")
    f = firing.json()
    assert f["@context"] == "http://schema.org/extensions" and f["type"] == "MessageCard"
    assert f["title"] == f["summary"] == SUBJECT and f["themeColor"] == "8C1A1A"
    assert "Disk 95% full on db" in f["text"] and resolved.json()["themeColor"] == "2DC72D"


def test_msteamsv2_adaptive_card(peer: ServicePeer) -> None:
    firing_then_resolved("msteamsv2", peer)
    firing, resolved = peer.at("/teamsv2/")
    (att,) = firing.json()["attachments"]
    card = att["content"]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive" and card["version"] == "1.2"
    title, body = card["body"]
    assert title["text"] == "DiskFull on db" and title["color"] == "Attention" and body["text"].startswith(
        "\n\n# Alerts Firing:\n\nLabels:\n  - alertname = DiskFull\n")  # msteamsv2.default.text's Markdown
    assert resolved.json()["attachments"][0]["content"]["body"][0]["color"] == "Good"


def test_discord_embed_and_content(peer: ServicePeer) -> None:
    firing_then_resolved("discord", peer)
    firing, resolved = peer.at("/discord/")
    f = firing.json()
    assert f["content"] == "DiskFull needs a look" and f["username"] == "watchkeeper"
    (embed,) = f["embeds"]
    assert embed["title"] == SUBJECT and embed["color"] == 0x992D22
    assert resolved.json()["embeds"][0]["color"] == 0x2ECC71


def test_discord_caps_title_and_description(peer: ServicePeer) -> None:
    text = RECEIVERS["discord"] + "\n        title: '{{ .CommonAnnotations.summary }}'"
    (ok,) = deliver("discord", peer.url, note(*[event(instance=f"db-{i}", summary="y" * 300) for i in range(30)]),
                    text=text)
    assert not isinstance(ok, DeliveryError), ok
    embed = peer.at("/discord/")[0].json()["embeds"][0]
    assert len(embed["title"]) == 256 and len(embed["description"]) == 4096


def test_telegram_send_message_html_escaped_and_capped(peer: ServicePeer) -> None:
    got = deliver("telegram", peer.url, note(event(summary="load <5 & rising")),
                  note(*[event(instance=f"db-{i}", summary="z" * 200) for i in range(40)]), note(event("resolved")))
    assert not [g for g in got if isinstance(g, DeliveryError)], got
    first, long, resolved = peer.at("/telegram/")
    assert first.path == f"/telegram/bot{TELEGRAM_TOKEN}/sendMessage" and first.method == "POST"
    b = first.json()
    assert b["chat_id"] == -1001234567890 and b["parse_mode"] == "HTML" and b["message_thread_id"] == 7
    assert "load &lt;5 &amp; rising" in b["text"] and b["disable_notification"] is False
    assert len(long.json()["text"]) == 4096 and resolved.json()["text"].startswith("\n\n\nAlerts Resolved:")
    assert got[0] == "message 42"


def test_telegram_bot_token_from_file(peer: ServicePeer, tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TELEGRAM_TOKEN + "\n")
    text = RECEIVERS["telegram"].replace(f'bot_token: "{TELEGRAM_TOKEN}"', f"bot_token_file: {tmp_path / 'token'}")
    (ok,) = deliver("telegram", peer.url, note(event()), text=text)
    assert ok == "message 42"


def test_telegram_flood_control_is_retried_after_its_retry_after(peer: ServicePeer) -> None:
    peer.telegram_flood = True
    flood, ok = deliver("telegram", peer.url, note(event()), note(event()))
    assert isinstance(flood, DeliveryError) and flood.retryable and flood.retry_after == 7.0
    assert "Too Many Requests: retry after 7" in str(flood) and TELEGRAM_TOKEN not in str(flood)
    assert ok == "message 42"


def test_webex_markdown_to_room_with_bearer_token(peer: ServicePeer) -> None:
    firing_then_resolved("webex", peer)
    firing, resolved = peer.at("/webex/")
    assert firing.headers["Authorization"] == f"Bearer {WEBEX_TOKEN}" and firing.method == "POST"
    b = firing.json()
    assert b["roomId"].startswith("Y2lzY29") and b["markdown"].startswith("Disk 95% full on db\n\nAlerts Firing:")
    assert "Alerts Resolved:" in resolved.json()["markdown"]


def test_webex_message_capped_at_7439_bytes(peer: ServicePeer) -> None:
    (ok,) = deliver("webex", peer.url, note(*[event(instance=f"db-{i}", summary="é" * 300) for i in range(30)]))
    assert not isinstance(ok, DeliveryError), ok
    assert len(peer.at("/webex/")[0].json()["markdown"].encode()) <= 7439


def test_wechat_token_once_then_messages_and_a_new_token_when_expired(peer: ServicePeer) -> None:
    peer.wechat_expire_next = False
    got = deliver("wechat", peer.url, note(event()), note(event("resolved")))
    assert got == ["msgid MSGID1", "msgid MSGID1"]
    token, first, second = peer.at("/wechat/")
    assert token.method == "GET" and token.query == {"corpid": WECHAT_CORP, "corpsecret": WECHAT_SECRET}
    assert first.query == {"access_token": "wx-token-1-abcdef"}
    b = first.json()
    assert (b["msgtype"], b["agentid"], b["toparty"], b["safe"]) == ("text", "1000002", "2", "0")
    assert b["text"]["content"].startswith(f"{SUBJECT}\nDisk 95% full on db\nAlerts Firing:")
    assert b["text"]["content"].endswith(f"\nAlertmanagerUrl:\n{ALERTS_URL}")
    assert "Alerts Resolved:" in second.json()["text"]["content"]
    peer.wechat_expire_next = True
    expired, retried = deliver("wechat", peer.url, note(event()), note(event()))
    assert isinstance(expired, DeliveryError) and expired.retryable and "42001" in str(expired)
    assert retried == "msgid MSGID1" and peer.wechat_tokens == 3  # a fresh channel, then the renewal


@pytest.mark.parametrize("kind", sorted(RECEIVERS))
def test_5xx_retryable_4xx_final_and_no_secret_in_the_error(kind: str, peer: ServicePeer) -> None:
    peer.fail_next = [503]
    (err,) = deliver(kind, peer.url, note(event()))
    assert isinstance(err, DeliveryError) and err.retryable and "HTTP 503" in str(err)
    peer.fail_next = [400]
    (err,) = deliver(kind, peer.url, note(event()))
    assert isinstance(err, DeliveryError) and not err.retryable and "HTTP 400" in str(err)
    peer.fail_next = [429]
    (err,) = deliver(kind, peer.url, note(event()))
    assert isinstance(err, DeliveryError) and err.retryable
    for secret in (OPSGENIE_KEY, VICTOROPS_KEY, PUSHOVER_TOKEN, PUSHOVER_USER, AWS_SECRET, TELEGRAM_TOKEN,
                   WEBEX_TOKEN, WECHAT_SECRET, TEAMS_PATH, TEAMS_V2_PATH, DISCORD_PATH,
                   DISCORD_PATH.rsplit("/", 1)[1]):
        assert secret not in str(err), (kind, str(err))


def test_a_service_that_refuses_the_key_is_a_final_error(peer: ServicePeer) -> None:
    text = RECEIVERS["opsgenie"].replace(OPSGENIE_KEY, "wrong-key-000000")
    (err,) = deliver("opsgenie", peer.url, note(event()), text=text)
    assert isinstance(err, DeliveryError) and not err.retryable and "HTTP 401" in str(err)
    assert "wrong-key-000000" not in redact(str(err))


def test_connection_refused_is_retryable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for kind in ("opsgenie", "telegram", "wechat"):
        (err,) = deliver(kind, url, note(event()))
        assert isinstance(err, DeliveryError) and err.retryable, (kind, err)


def test_through_the_sink_every_attempt_is_recorded_without_secrets(wk_config: Config, tmp_path: Path,
                                                                    peer: ServicePeer) -> None:
    """The real sink (tansu, a subprocess): firing then resolved to every kind, the first attempt answered
    503 (retried), a Pushover receiver with a wrong user key refused (recorded `failed` with the reason)."""
    kinds = dict(RECEIVERS)
    kinds["pushover"] += RECEIVERS["pushover"].split("pushover_configs:")[1].replace(
        f"user_key: {PUSHOVER_USER}", "user_key: wrong-user-key-0000")
    am = ("route: {receiver: team, group_by: [alertname], group_wait: 0s, group_interval: 1s, repeat_interval: 1h}\n"
          "receivers:\n  - name: team" + "".join(kinds.values()).replace("{url}", peer.url) + "\n")
    (tmp_path / "alertmanager.yml").write_text(am)
    wk_config.notify.alertmanager_config = str(tmp_path / "alertmanager.yml")
    wk_config.notify.retry_initial_seconds, wk_config.notify.retry_max_seconds = 0.2, 1.0
    cfg_path = write_config(wk_config, tmp_path / "watchkeeper.yaml")
    log = tmp_path / "sink.log"
    peer.fail_next = [503]
    proc = start_sink(cfg_path, log)
    try:
        t0 = time.time()
        first = event()
        send(wk_config, [first.model_copy(update={"starts_at": t0, "event_time": t0})])
        wait_for(lambda: len(peer.at("/wechat/cgi-bin/message")) >= 1 and len(peer.at("/pushover/")) >= 2
                 and len(peer.at("/opsgenie/")) >= 3, 60, proc, log)
        resolved = event("resolved").model_copy(update={"starts_at": t0, "ends_at": t0 + 1, "event_time": t0 + 1})
        send(wk_config, [resolved])
        wait_for(lambda: len(peer.at("/opsgenie/")) >= 4 and len(peer.at("/wechat/cgi-bin/message")) >= 2,
                 60, proc, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)

    def done(rs: list[Any]) -> bool:
        got = [orjson.loads(r.value) for r in rs]
        sent = {(g["integration"], g["firing"]) for g in got if g["status"] == "sent"}
        return all((f"{k}[0]", f) in sent for k in kinds for f in (0, 1))

    raw = asyncio.run(consume_until(wk_config.kafka.bootstrap, wk_config.kafka.topics.notifications, done))
    assert done(raw), "not every kind recorded a sent firing and a sent resolved notification"
    recs = [orjson.loads(r.value) for r in raw]
    assert any(r["status"] == "retrying" and "HTTP 503" in r["error"] for r in recs)
    failed = [r for r in recs if r["status"] == "failed"]
    assert {r["integration"] for r in failed} == {"pushover[1]"}
    assert "HTTP 400" in failed[0]["error"] and "user identifier is invalid" in failed[0]["error"]
    text = orjson.dumps(recs).decode() + log.read_text()
    for secret in (OPSGENIE_KEY, VICTOROPS_KEY, PUSHOVER_TOKEN, AWS_SECRET, TELEGRAM_TOKEN, WEBEX_TOKEN,
                   WECHAT_SECRET, "wx-token-1-abcdef", DISCORD_PATH.rsplit("/", 1)[1]):
        assert secret not in text, secret


def test_the_real_alertmanager_is_accepted_by_the_stand_ins_and_sends_what_we_send(tmp_path: Path,
                                                                                   peer: ServicePeer) -> None:
    """Alertmanager 0.25 (Debian) notifies the same stand-ins: every request it makes is accepted (so their
    checks are the services' rules, not ours; its SNS signature, from the AWS SDK for Go, passes the
    verifier), and for the same alert our requests carry the same alias/entity id, subject and body, character
    for character (the default template names rendered as Alertmanager renders them)."""
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.skip("prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)")
    kinds = ("opsgenie", "victorops", "sns", "discord", "telegram", "webex", "wechat")  # 0.25 lacks Teams
    # Keys Alertmanager added after 0.25 (Discord's content and username, Telegram's message_thread_id) left out.
    later = ("        content:", "        username:", "        message_thread_id:")
    receivers = "\n".join(line for k in kinds for line in RECEIVERS[k].split("\n")
                          if not line.startswith(later)).replace("{url}", peer.url)
    receivers = receivers.replace("sigv4: {access_key", "sigv4: {region: eu-west-1, access_key")  # 0.25 needs it
    (tmp_path / "am.yml").write_text("route: {receiver: team, group_by: [alertname], group_wait: 0s, "
                                     "group_interval: 1h, repeat_interval: 1h}\nreceivers:\n  - name: team"
                                     + receivers + "\n")
    port = free_port()
    out = open(tmp_path / "am.log", "wb")  # noqa: SIM115 (the child owns it)
    proc = subprocess.Popen([binary, f"--config.file={tmp_path / 'am.yml'}", f"--storage.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
                             "--web.external-url=http://watchkeeper.example:8080"],  # the notes' external URL
                            stdout=out, stderr=subprocess.STDOUT)
    labels = {"alertname": "DiskFull", "severity": "critical", "service": "db"}
    summary = "Disk <full> & more"
    try:
        alert = orjson.dumps([{"labels": labels, "annotations": {"summary": summary}}])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/v2/alerts", data=alert,
                    headers={"Content-Type": "application/json"}), timeout=5)
                break
            except OSError:
                time.sleep(0.2)
        while time.monotonic() < deadline and proc.poll() is None and not all(
                peer.at(p) for p in ("/opsgenie/", "/victorops/", "/sns/", "/discord/", "/telegram/", "/webex/",
                                     "/wechat/cgi-bin/message")):
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(10)
    assert all(peer.at(p) for p in ("/opsgenie/", "/victorops/", "/sns/", "/discord/", "/telegram/", "/webex/",
                                    "/wechat/cgi-bin/message")), (tmp_path / "am.log").read_text()[-3000:]
    theirs = {p: peer.at(p)[0] for p in ("/opsgenie/v2/alerts", "/victorops/", "/sns/", "/discord/", "/telegram/",
                                         "/webex/", "/wechat/cgi-bin/message")}
    assert all(200 <= a < 300 for a in peer.answers), list(zip([c.path for c in peer.calls], peer.answers,
                                                               strict=True))
    assert sigv4_problem(theirs["/sns/"], AWS_SECRET, "sns") == ""

    peer.calls.clear()
    ev = AlertEvent(fingerprint="f" * 16, rule="DiskFull", state="firing", labels=labels,
                    annotations={"summary": summary}, starts_at=NOW, event_time=NOW)
    for kind in kinds:
        (got,) = deliver(kind, peer.url, note(ev))
        assert not isinstance(got, DeliveryError), (kind, got)
    ours = {p: peer.at(p)[0] for p in theirs}
    og_t, og_o = theirs["/opsgenie/v2/alerts"].json(), ours["/opsgenie/v2/alerts"].json()
    assert og_o["alias"] == og_t["alias"] and og_o["message"] == og_t["message"] == "[FIRING:1] DiskFull (db critical)"
    assert og_o["description"] == og_t["description"] and og_o["source"] == og_t["source"] == ALERTS_URL
    assert og_o["details"] == og_t["details"] and og_o["responders"] == og_t["responders"]
    assert (og_o["note"], og_o["priority"]) == (og_t["note"], og_t["priority"])
    assert og_o["tags"] == [t.strip() for t in og_t["tags"]]  # 0.25 keeps the blank after a comma; we trim
    vo_t, vo_o = theirs["/victorops/"].json(), ours["/victorops/"].json()
    assert theirs["/victorops/"].path == ours["/victorops/"].path
    for key in ("entity_id", "message_type", "entity_display_name", "monitoring_tool"):
        assert vo_o[key] == vo_t[key], key
    assert vo_o["state_message"] == vo_t["state_message"]
    sns_t, sns_o = theirs["/sns/"].form(), ours["/sns/"].form()
    assert sns_o["Subject"] == sns_t["Subject"] and sns_o["TopicArn"] == sns_t["TopicArn"]
    assert sns_o["Message"] == sns_t["Message"]
    dc_t, dc_o = theirs["/discord/"].json()["embeds"][0], ours["/discord/"].json()["embeds"][0]
    assert (dc_o["title"], dc_o["description"]) == (dc_t["title"], dc_t["description"])
    tg_t, tg_o = theirs["/telegram/"].json(), ours["/telegram/"].json()
    assert tg_o["text"] == tg_t["text"] and tg_o["parse_mode"] == tg_t["parse_mode"] == "HTML"
    assert ours["/webex/"].json()["markdown"] == theirs["/webex/"].json()["markdown"]
    wc_t, wc_o = theirs["/wechat/cgi-bin/message"].json(), ours["/wechat/cgi-bin/message"].json()
    assert (wc_o["toparty"], wc_o["agentid"], wc_o["msgtype"]) == (wc_t["toparty"], wc_t["agentid"], wc_t["msgtype"])
    assert wc_o["text"]["content"] == wc_t["text"]["content"]


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made here (no fixture file holds a key)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(start).not_valid_after(start + datetime.timedelta(days=365 * 30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    return tmp / "cert.pem", tmp / "key.pem"


def test_http_config_tls_ca_file_and_basic_auth_from_a_file(tmp_path: Path) -> None:
    """`tls_config.ca_file` trusts a private CA, `insecure_skip_verify` skips the check, an untrusted
    certificate is a (retryable) error; `basic_auth.password_file` is read at send and never shown."""
    cert, key = _self_signed(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.Response(status=200, text="1")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    port = free_port()
    served = ServedApp(app, port, ctx)
    (tmp_path / "password").write_text("s3cret-password-file\n")
    base = (f"\n    msteams_configs:\n      - webhook_url: \"https://127.0.0.1:{port}{TEAMS_PATH}\"\n"
            f"        http_config:\n          basic_auth: {{username: wk, password_file: {tmp_path / 'password'}}}\n")
    try:
        tls = "          tls_config: "
        trusted = deliver("msteams", "", note(event()), text=base + tls + f"{{ca_file: {cert}}}")
        skipped = deliver("msteams", "", note(event()), text=base + tls + "{insecure_skip_verify: true}")
        (untrusted,) = deliver("msteams", "", note(event()), text=base)
    finally:
        served.stop()
    assert trusted == [None] and skipped == [None]
    assert seen == ["Basic " + base64.b64encode(b"wk:s3cret-password-file").decode()] * 2
    assert isinstance(untrusted, DeliveryError) and untrusted.retryable and "certificate" in str(untrusted).lower()
    assert TEAMS_PATH.rsplit("/", 1)[1] not in str(untrusted)
