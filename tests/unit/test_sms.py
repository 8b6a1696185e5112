"""SMS, the pure part: the receiver kind as loaded (E.164 errors with file and line), the text made for a
phone (one SMS, never split), the secrets, and the rate limit under a flapping alert on a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchkeeper.core.errors import SourceError
from watchkeeper.core.notify.config import load_notify_config
from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.sms import (
    SmsConfig,
    SmsLimiter,
    default_text,
    fits,
    sms_length,
    sms_secrets,
    sms_text,
    truncate,
)
from watchkeeper.core.secrets import SecretRedactor
from watchkeeper.schemas.alerts import AlertEvent

CONFIG = """
route:
  receiver: oncall
receivers:
  - name: oncall
    sms_configs:
      - to: "{to}"
        twilio: {{account_sid: ACabc, auth_token: tw-token-123, from: "+15005550006"}}
      - to: "+447700900123"
        sns: {{region: eu-west-1, access_key_id: AKIDEXAMPLE, secret_access_key: wJalrXUtnFEMI/K7MDENG}}
      - to: "+4915112345678"
        http:
          url: http://127.0.0.1:9/send
          headers: {{Authorization: "Bearer gw-secret-42"}}
          body: '{{"number": "{{{{ .To }}}}", "msg": "{{{{ .Text }}}}", "state": "{{{{ .Status }}}}"}}'
"""


def alert(i: int, state: str = "firing", **labels: str) -> AlertEvent:
    labels = {"alertname": "DiskFull", "severity": "critical", "priority": "P1", "service": "db",
              "instance": f"db-{i}:9100", **labels}
    return AlertEvent(fingerprint=f"{i:016x}", rule="DiskFull", state=state,  # type: ignore[arg-type]
                      labels=labels, annotations={"summary": "Disk 95% full on db"}, starts_at=0.0,
                      ends_at=1.0 if state == "resolved" else None, event_time=0.0)


def note(*alerts: AlertEvent, url: str = "http://wk.example:8080") -> Notification:
    return Notification("oncall", "sms[0]", '{}:{alertname="DiskFull"}', {"alertname": "DiskFull"},
                        list(alerts), 0.0, url)


def test_sms_receivers_load_with_each_provider() -> None:
    cfg = load_notify_config(CONFIG.format(to="+14155550100"))
    twilio, sns, http = cfg.receivers["oncall"].sms_configs
    assert (twilio.provider, sns.provider, http.provider) == ("twilio", "sns", "http")
    assert twilio.twilio is not None and twilio.twilio.messages_url() == \
        "https://api.twilio.com/2010-04-01/Accounts/ACabc/Messages.json"
    assert sns.sns is not None and sns.sns.url() == "https://sns.eu-west-1.amazonaws.com/"
    assert [name for name, _ in cfg.receivers["oncall"].integrations()] == ["sms[0]", "sms[1]", "sms[2]"]
    assert twilio.max_per_hour == 20 and twilio.per_group_interval is None and not twilio.send_resolved


@pytest.mark.parametrize("number", ["0612345678", "+0612345678", "+1 415 555 0100", "+1234567890123456", "+"])
def test_a_number_that_is_not_e164_is_refused_with_file_line_and_field(number: str) -> None:
    with pytest.raises(SourceError) as err:
        load_notify_config(CONFIG.format(to=number), "am.yml")
    assert err.value.line == 7 and err.value.field == "receivers.0.sms_configs.0.to"
    assert "not an E.164 phone number" in str(err.value) and "+14155550100" in str(err.value)
    assert str(err.value).startswith("am.yml:7: receivers.0.sms_configs.0.to: ")


@pytest.mark.parametrize(("entry", "says"), [
    ('{to: "+14155550100"}', "set exactly one provider"),
    ('{to: "+14155550100", twilio: {account_sid: A, auth_token: t, from: "+1555"}, '
     'http: {url: "http://127.0.0.1:9"}}', "(got twilio, http)"),
    ('{to: "+14155550100", twilio: {account_sid: A, auth_token: t}}', "exactly one of from"),
    ('{to: "+14155550100", twilio: {account_sid: A, auth_token: t, from: "not a sender!"}}', "sender ID"),
    ('{to: "+14155550100", http: {url: "http://127.0.0.1:9", body: "{{ .Alerts }}"}}', "is not supported"),
    ('{to: "+14155550100", text: "{{ range .Alerts }}x", http: {url: "http://127.0.0.1:9"}}',
     "without {{end}}"),
    ('{to: "+14155550100", text: "{{ .Nope }}", http: {url: "http://127.0.0.1:9"}}',
     "can't evaluate field Nope"),
])
def test_bad_sms_configs_are_refused(entry: str, says: str) -> None:
    text = f"route: {{receiver: r}}\nreceivers:\n  - name: r\n    sms_configs:\n      - {entry}\n"
    with pytest.raises(SourceError) as err:
        load_notify_config(text, "am.yml")
    assert says in str(err.value) and err.value.line == 5


def test_the_default_text_names_status_priority_alert_labels_count_and_link() -> None:
    one = default_text(note(alert(1)))
    assert one == "FIRING P1 DiskFull service=db instance=db-1:9100: Disk 95% full on db http://wk.example:8080"
    eight = default_text(note(*[alert(i) for i in range(8)]))
    assert eight.startswith("FIRING P1 DiskFull") and " +7 more http://wk.example:8080" in eight
    assert default_text(note(alert(1, "resolved"), url="")) == \
        "RESOLVED P1 DiskFull service=db instance=db-1:9100: Disk 95% full on db"


def test_a_huge_group_with_long_labels_is_still_one_sms() -> None:
    long = "/var/lib/clickhouse/store/" * 10
    n = note(*[alert(i, mountpoint=long) for i in range(500)])
    text = default_text(n)
    assert fits(text) and "+499 more" in text and text.startswith("FIRING P1 DiskFull")
    assert long not in text  # what does not fit is left out, not cut in half


def test_a_character_outside_gsm7_means_70_characters() -> None:
    assert sms_length("Zürich") == (6, 160)  # ü is in GSM-7
    assert sms_length("{x}") == (5, 160)  # braces take two septets each
    assert sms_length("Kraków") == (6, 70)  # ó is not: UCS-2
    text = default_text(note(alert(1, site="Kraków")))
    assert fits(text) and sms_length(text)[1] == 160  # the label that would force UCS-2 did not fit in 70


def test_a_user_template_is_rendered_and_cut_to_one_sms() -> None:
    cfg = SmsConfig.model_validate({"to": "+14155550100", "http": {"url": "http://127.0.0.1:9"},
                                    "text": "{{ .Status }}: {{ .CommonLabels.service }} "
                                            "{{ .CommonAnnotations.summary }} " + "x" * 200})
    text = sms_text(cfg, note(alert(1)))
    assert text.startswith("firing: db Disk 95% full on db xxx") and text.endswith("...") and len(text) == 160
    assert truncate("short") == "short"


@given(name=st.text(min_size=1, max_size=300), value=st.text(max_size=300), count=st.integers(1, 2000),
       url=st.sampled_from(["", "http://wk:8080", "https://watchkeeper.example.com/" + "a" * 200]))
def test_the_default_text_always_fits_one_sms(name: str, value: str, count: int, url: str) -> None:
    a = alert(0, label=value).model_copy(update={"labels": {"alertname": name, "label": value}, "rule": name})
    text = default_text(Notification("r", "sms[0]", "k", {"alertname": name}, [a] * count, 0.0, url))
    assert fits(text) and text


def test_secrets_the_name_walk_misses_are_listed() -> None:
    cfg = load_notify_config(CONFIG.format(to="+14155550100"))
    twilio, _, http = cfg.receivers["oncall"].sms_configs
    red = SecretRedactor()
    red.add_config(cfg.receivers["oncall"].model_dump())
    for c in (twilio, http):
        for s in sms_secrets(c):
            red.add(s)
    assert twilio.twilio is not None
    text = (f"tw-token-123 wJalrXUtnFEMI/K7MDENG {twilio.twilio.basic_auth()} Bearer gw-secret-42 "
            "Authorization: gw-secret-42")
    assert red.redact(text) == "<secret> <secret> <secret> <secret> Authorization: <secret>"


def test_a_flapping_alert_gets_at_most_three_sms_per_interval() -> None:
    """Given one group that fires and resolves every minute for 4 hours (repeat_interval 1h), expect
    firing, resolved, firing in the first minutes, then a resolved and a firing once an hour (the phone is
    told each change at most once an hour), all else held: 9 SMS instead of 240."""
    lim = SmsLimiter(max_per_hour=20)
    sent, held = [], []
    for minute in range(240):
        status = "firing" if minute % 2 == 0 else "resolved"
        got = lim.take("g", status, 3600.0, minute * 60.0)
        (held if isinstance(got, str) else sent).append((minute, status))
    assert sent == [(0, "firing"), (1, "resolved"), (2, "firing"), (61, "resolved"), (62, "firing"),
                    (121, "resolved"), (122, "firing"), (181, "resolved"), (182, "firing")]
    assert len(held) == 240 - 9


def test_a_flood_of_groups_is_capped_per_hour_and_says_why() -> None:
    lim = SmsLimiter(max_per_hour=20)
    got = [lim.take(f"g{i}", "firing", 3600.0, i * 10.0) for i in range(60)]  # 60 groups in 10 minutes
    assert sum(not isinstance(g, str) for g in got) == 20
    assert got[20] == "held: 20 SMS to this phone in the last hour (max_per_hour 20)"
    assert not isinstance(lim.take("late", "firing", 3600.0, 3600.0 + 1), str)  # the hour slid past the first


def test_a_resolution_the_phone_never_heard_fire_is_held_and_a_failed_send_is_released() -> None:
    lim = SmsLimiter()
    assert lim.take("g", "resolved", 60.0, 0.0) == \
        "held: the phone was not told this group fires, so its resolution is no news"
    first = lim.take("g", "firing", 60.0, 0.0)
    assert not isinstance(first, str)
    assert isinstance(lim.take("g", "firing", 60.0, 10.0), str)
    lim.release(first)  # the provider refused it: the retry is judged as if nothing was sent
    assert not isinstance(lim.take("g", "firing", 60.0, 10.0), str)
    assert lim.take("g", "firing", 60.0, 30.0) == \
        "held: this phone was told the group fires 20s ago; at most one firing SMS per group per 1m"


def test_retry_after_takes_seconds_or_an_http_date() -> None:
    from email.utils import formatdate

    from watchkeeper.sinks.channels.base import retry_after

    now = 1_800_000_000.0
    assert retry_after({"Retry-After": "7"}, now) == 7.0
    assert retry_after({"Retry-After": formatdate(now + 30, usegmt=True)}, now) == 30.0
    assert retry_after({"Retry-After": formatdate(now - 30, usegmt=True)}, now) == 0.0  # past: at once
    assert retry_after({"Retry-After": "soon"}, now) is None and retry_after({}, now) is None
