"""The SMS channel against a local server that checks each request as the provider documents it: Twilio's
form fields and basic auth, SNS's SigV4 signature recomputed with botocore's signer, a generic gateway's
body template; 429 with Retry-After (retried later), 400 for a bad number (final), and a flapping alert
held back by the rate limit on a fake clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from email.utils import formatdate
from typing import Any

import aiohttp
import orjson
import pytest

from tests.integration.sms_peers import AWS_SECRET, Answer, SmsProviderServer
from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.sms import SmsConfig
from watchkeeper.schemas.alerts import AlertEvent
from watchkeeper.sinks.channels.base import DeliveryError, HeldBack
from watchkeeper.sinks.channels.sms import SmsChannel

NOW = 1_800_000_000.0


def alert(i: int, state: str = "firing", summary: str = "Disk 95% full on db") -> AlertEvent:
    labels = {"alertname": "DiskFull", "severity": "critical", "priority": "P1", "service": "db",
              "instance": f"db-{i}:9100"}
    return AlertEvent(fingerprint=f"{i:016x}", rule="DiskFull", state=state,  # type: ignore[arg-type]
                      labels=labels, annotations={"summary": summary}, starts_at=NOW - 60,
                      ends_at=NOW if state == "resolved" else None, event_time=NOW)


def note(*alerts: AlertEvent, group: str = "g1") -> Notification:
    return Notification("oncall", "sms[0]", f'{{}}:{{group="{group}"}}', {"alertname": "DiskFull"}, list(alerts),
                        NOW, "http://wk.example:8080")


@pytest.fixture
def provider() -> Iterator[SmsProviderServer]:
    srv = SmsProviderServer().start()
    yield srv
    srv.stop()


def channel(s: aiohttp.ClientSession, cfg: dict[str, Any], clock: list[float] | None = None) -> SmsChannel:
    t = clock or [NOW]
    return SmsChannel("sms[0]", SmsConfig.model_validate(cfg), s, lambda _key: 3600.0, lambda: t[0])


def run(fn: Any) -> Any:
    async def go() -> Any:
        async with aiohttp.ClientSession() as s:
            return await fn(s)

    return asyncio.run(go())


def test_twilio_gets_form_fields_with_basic_auth(provider: SmsProviderServer) -> None:
    got = run(lambda s: channel(s, provider.twilio_config("+14155550100")).send(note(*[alert(i) for i in range(8)])))
    assert provider.violations == []
    (sms,) = provider.sms
    assert sms.form["To"] == "+14155550100" and sms.form["From"] == "+15005550006" and set(sms.form) == {
        "To", "From", "Body"}
    assert sms.text == "FIRING P1 DiskFull service=db instance=db-0:9100: Disk 95% full on db +7 more " \
                       "http://wk.example:8080"
    assert got == f"twilio SM{1:032x}: {len(sms.text)} characters"


def test_twilio_messaging_service_instead_of_a_number(provider: SmsProviderServer) -> None:
    cfg = provider.twilio_config("+14155550100")
    cfg["twilio"] = {**cfg["twilio"], "from": "", "messaging_service_sid": "MG0042"}  # type: ignore[dict-item]
    run(lambda s: channel(s, cfg).send(note(alert(1))))
    assert provider.violations == [] and provider.sms[0].form["MessagingServiceSid"] == "MG0042"
    assert "From" not in provider.sms[0].form


def test_sns_publish_is_sigv4_signed_as_botocore_signs(provider: SmsProviderServer) -> None:
    got = run(lambda s: channel(s, provider.sns_config("+447700900123")).send(note(alert(1))))
    assert provider.violations == []
    (sms,) = provider.sms
    assert sms.provider == "sns" and sms.to == "+447700900123" and sms.text.startswith("FIRING P1 DiskFull")
    assert sms.form["MessageAttributes.entry.1.Name"] == "AWS.SNS.SMS.SMSType"
    assert sms.form["MessageAttributes.entry.1.Value.StringValue"] == "Transactional"
    assert got.startswith("sns 00000001-0000-4000-8000-000000000000: ")


def test_sns_refuses_a_wrong_secret_so_the_signature_check_is_real(provider: SmsProviderServer) -> None:
    cfg = provider.sns_config("+447700900123")
    cfg["sns"] = {**cfg["sns"], "secret_access_key": AWS_SECRET + "x"}  # type: ignore[dict-item]
    with pytest.raises(DeliveryError) as err:
        run(lambda s: channel(s, cfg).send(note(alert(1))))
    assert not err.value.retryable and "signature does not match" in str(err.value)
    assert provider.sms == []


def test_generic_gateway_body_template_escapes_the_text(provider: SmsProviderServer) -> None:
    cfg = {"to": "+4915112345678", "http": {
        "url": provider.url + "/gateway/send", "headers": {"Authorization": "Bearer gateway-token-0042"},
        "body": '{"number": "{{ .To }}", "message": "{{ .Text }}", "state": "{{ .Status }}", '
                '"service": "{{ .CommonLabels.service }}"}'}}
    got = run(lambda s: channel(s, cfg).send(note(alert(1, summary='quote " and \\ back'))))
    assert provider.violations == []
    (sms,) = provider.sms
    assert got == f"http HTTP 202: {len(sms.text)} characters"
    assert sms.form == {"number": "+4915112345678", "state": "firing", "service": "db",
                        "message": 'FIRING P1 DiskFull service=db instance=db-1:9100: quote " and \\ back '
                                   "http://wk.example:8080"}


@pytest.mark.parametrize("seconds", [7, 30])
def test_429_is_retryable_with_the_providers_retry_after(provider: SmsProviderServer, seconds: int) -> None:
    """Retry-After as delay-seconds (7) and as an HTTP date (30 s from the real clock, as a server sends it)."""
    header = str(seconds) if seconds == 7 else formatdate(time.time() + seconds, usegmt=True)
    provider.script.append(Answer(429, '{"code": 20429, "message": "Too Many Requests"}', {"Retry-After": header}))
    with pytest.raises(DeliveryError) as err:
        run(lambda s: channel(s, provider.twilio_config("+14155550100")).send(note(alert(1))))
    assert err.value.retryable and "HTTP 429" in str(err.value) and "20429: Too Many Requests" in str(err.value)
    assert err.value.retry_after is not None and seconds - 5 < err.value.retry_after <= seconds


def test_a_bad_number_is_final_and_does_not_use_up_the_limit(provider: SmsProviderServer) -> None:
    provider.script.append(Answer(400, orjson.dumps({
        "code": 21211, "message": "Invalid 'To' Phone Number: +1415555XXXX", "status": 400}).decode()))

    async def twice(s: aiohttp.ClientSession) -> str:
        ch = channel(s, provider.twilio_config("+14155550100"))
        with pytest.raises(DeliveryError) as err:
            await ch.send(note(alert(1)))
        assert not err.value.retryable and "HTTP 400" in str(err.value) and "21211: Invalid 'To'" in str(err.value)
        return await ch.send(note(alert(1)))  # the failed one took no slot: the same group may go now

    assert run(twice).startswith("twilio SM")
    assert len(provider.attempts) == 2 and len(provider.sms) == 1


def test_sns_throttling_is_retried(provider: SmsProviderServer) -> None:
    provider.script.append(Answer(400, "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
                                       "<Message>Rate exceeded</Message></Error></ErrorResponse>"))
    with pytest.raises(DeliveryError) as err:
        run(lambda s: channel(s, provider.sns_config("+447700900123")).send(note(alert(1))))
    assert err.value.retryable and "Throttling: Rate exceeded" in str(err.value)


def test_a_flapping_alert_sends_one_sms_and_holds_the_rest(provider: SmsProviderServer) -> None:
    """Given an alert that re-fires every 2 minutes for an hour (send_resolved false, as by default, so only
    firing notifications reach the channel), expect one SMS and 29 held, each with its reason."""
    clock = [NOW]

    async def flap(s: aiohttp.ClientSession) -> list[str]:
        ch = channel(s, provider.twilio_config("+14155550100"), clock)
        held = []
        for i in range(30):
            clock[0] = NOW + i * 120
            try:
                await ch.send(note(alert(1)))
            except HeldBack as exc:
                held.append(str(exc))
        return held

    held = run(flap)
    assert len(provider.sms) == 1 and len(provider.attempts) == 1 and len(held) == 29
    assert held[0] == "held: this phone was told the group fires 2m ago; at most one firing SMS per group per 1h"
