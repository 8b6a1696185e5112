"""SMS providers' secrets never leave the configuration: given Twilio, SNS and a generic gateway all pointed
at a peer that answers 400 quoting the Authorization header and body it got, expect the Twilio auth token
(and the basic-auth header made of it), the AWS secret key and the gateway's bearer token nowhere in the
records on `wk.notifications`, the sink's log or its state files; the errors still say what failed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from tests.conftest import write_config
from tests.integration.kafka_io import consume_until, produce
from tests.security.test_secret_masking import echo_server  # noqa: F401 (a fixture)
from watchkeeper.plumbing.config import Config
from watchkeeper.schemas.alerts import AlertEvent
from watchkeeper.schemas.codec import encode

TWILIO_TOKEN = "Tw1l1oAuthT0ken-77"
AWS_SECRET = "AwsS3cretAcc3ssKey/77+x"
GATEWAY_TOKEN = "Gatew4yB3arer-77"
BASIC = "QUNzbXN0ZXN0OlR3MWwxb0F1dGhUMGtlbi03Nw=="  # base64 of "ACsmstest:<TWILIO_TOKEN>", as sent
SECRETS = (TWILIO_TOKEN, AWS_SECRET, GATEWAY_TOKEN, BASIC)

AM_CONFIG = """
route: {{receiver: oncall, group_wait: 0s, group_interval: 1s, repeat_interval: 1h}}
receivers:
  - name: oncall
    sms_configs:
      - to: "+14155550100"
        twilio: {{account_sid: ACsmstest, auth_token: "{twilio}", from: "+15005550006", api_url: "{echo}"}}
      - to: "+14155550101"
        sns: {{region: eu-west-1, access_key_id: AKIDSMS, secret_access_key: "{aws}", endpoint: "{echo}/sns/"}}
      - to: "+14155550102"
        http: {{url: "{echo}/gw", headers: {{Authorization: "Bearer {gateway}"}}}}
"""


def assert_clean(text: str | bytes, where: str) -> None:
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    leaked = [s for s in SECRETS if s in raw]
    assert not leaked, f"{where} holds {leaked}"


async def test_sms_provider_errors_leak_no_secret(wk_config: Config, tmp_path: Path, echo_server: str) -> None:  # noqa: F811
    import base64

    assert base64.b64encode(f"ACsmstest:{TWILIO_TOKEN}".encode()).decode() == BASIC
    (tmp_path / "alertmanager.yml").write_text(AM_CONFIG.format(twilio=TWILIO_TOKEN, aws=AWS_SECRET,
                                                                gateway=GATEWAY_TOKEN, echo=echo_server))
    wk_config.notify.alertmanager_config = str(tmp_path / "alertmanager.yml")
    cfg_path = write_config(wk_config, tmp_path / "watchkeeper.yaml")
    log_path = tmp_path / "notify-sink.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "watchkeeper", "sink", "notify", "--config", str(cfg_path)],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        event = AlertEvent(fingerprint="00000000000000bb", rule="DiskFull", state="firing", severity="critical",
                           labels={"alertname": "DiskFull", "severity": "critical"}, starts_at=1_790_000_000.0,
                           event_time=1_790_000_000.0)
        await produce(wk_config.kafka.bootstrap, wk_config.kafka.topics.alerts, [(b"bb", encode(event))])

        def all_failed(recs: list) -> bool:  # type: ignore[type-arg]
            return {orjson.loads(r.value)["integration"] for r in recs
                    if orjson.loads(r.value)["status"] == "failed"} >= {"sms[0]", "sms[1]", "sms[2]"}

        records = await consume_until(wk_config.kafka.bootstrap, wk_config.kafka.topics.notifications, all_failed,
                                      timeout=60)
        assert all_failed(records)
    finally:
        proc.terminate()
        proc.wait(30)
    errors = {}
    for r in records:
        assert_clean(r.value, "a record on wk.notifications")
        rec = orjson.loads(r.value)
        errors[rec["integration"]] = rec["error"]
    assert "HTTP 400" in errors["sms[0]"] and "bad request <secret>" in errors["sms[0]"], errors["sms[0]"]
    assert "HTTP 400" in errors["sms[1]"] and "Credential=AKIDSMS/" in errors["sms[1]"], errors["sms[1]"]
    assert "HTTP 400" in errors["sms[2]"] and "bad request <secret> {" in errors["sms[2]"], errors["sms[2]"]
    assert_clean(log_path.read_text(), "the notification sink's log")
    for f in (wk_config.data_path / "notify").iterdir():
        assert_clean(f.read_bytes(), f"the sink's state file {f.name}")
