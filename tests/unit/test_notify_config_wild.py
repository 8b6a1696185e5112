"""Alertmanager configs from the wild: every receiver kind loads with Alertmanager's validation, `global`
and `http_config` fields, an empty `global:`, email header templates checked at load, and
`watchkeeper notify check`."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchkeeper.cli import main
from watchkeeper.core.errors import SourceError
from watchkeeper.core.notify.config import load_notify_config, load_notify_config_file

CORPUS = Path(__file__).parents[1] / "fixtures/alertmanager/corpus"
HEAD = "route: {receiver: r}\nreceivers:\n  - name: r\n"


@pytest.mark.parametrize(("receiver", "message"), [
    ("    msteams_configs: [{title: x}]", "one of webhook_url or webhook_url_file must be configured"),
    ("    discord_configs: [{webhook_url: 'http://127.0.0.1:9/', colour: red}]", "field colour not found"),
    ("    telegram_configs: [{bot_token: t}]", "missing chat_id on telegram_config"),
    ("    webex_configs: [{room_id: r}]", "missing webex_configs.http_config.authorization"),
    ("    pushover_configs: [{token: t}]", "missing user key in Pushover config"),
    ("    sns_configs: [{subject: s}]", "must provide either a Target ARN, Topic ARN, or Phone Number"),
    ("    victorops_configs: [{api_key: k}]", "missing Routing key in VictorOps config"),
    ("    opsgenie_configs: [{api_key: k, responders: [{name: n, type: squad}]}]", "has invalid type"),
    ("    opsgenie_configs: [{message: m}]", "no global OpsGenie API Key set"),
    ("    pagerduty_configs: [{client: c}]", "missing service or routing key in PagerDuty config"),
    ("    webhook_configs: [{url: 'not a url'}]", 'unsupported scheme "" for URL'),
    ("    slack_configs: [{channel: '#ops'}]", "no global Slack API URL set"),
    ("    email_configs: [{to: a@b.c, from: x@y.z, smarthost: 'h:25', headers: {Subject: '{{ template \"x\" }}'}}]",
     'template "x" not defined'),
])
def test_refused_with_alertmanagers_reason(receiver: str, message: str) -> None:
    with pytest.raises(SourceError) as exc:
        load_notify_config(HEAD + receiver + "\n", "am.yml")
    assert message in str(exc.value) and exc.value.line == 4


def test_email_header_template_error_names_the_header_line() -> None:
    text = HEAD + ("    email_configs:\n      - to: a@b.c\n        from: x@y.z\n        smarthost: 'h:25'\n"
                   "        headers:\n          Subject: ok\n          X-Bad: '{{ .Nope }}'\n")
    with pytest.raises(SourceError) as exc:
        load_notify_config(text, "am.yml")
    assert (exc.value.line, exc.value.field) == (10, "receivers.0.email_configs.0.headers.X-Bad")


def test_every_kind_is_an_integration_with_alertmanagers_send_resolved_default() -> None:
    cfg = load_notify_config(HEAD + "    msteams_configs: [{webhook_url: 'http://127.0.0.1:9/'}]\n"
                             "    webhook_configs: [{url: 'http://127.0.0.1:9/hook'}]\n"
                             "    wechat_configs: [{api_secret: s, corp_id: c}]\n"
                             "    telegram_configs: [{bot_token: t, chat_id: 1, send_resolved: false}]\n")
    got = {k: c.send_resolved for k, c in cfg.receivers["r"].integrations()}
    assert got == {"webhook[0]": True, "msteams[0]": True, "wechat[0]": False, "telegram[0]": False}


@pytest.mark.parametrize(("receiver", "field", "message"), [
    ("    opsgenie_configs: [{api_key: k, message: '{{ .Nope }}'}]", "message", "can't evaluate field Nope"),
    ("    opsgenie_configs: [{api_key: k, details: {a: '{{ template \"x\" . }}'}}]", "details.a",
     'template "x" not defined'),
    ("    opsgenie_configs: [{api_key: k, responders: [{name: '{{ .X }}', type: team}]}]", "responders.0.name",
     "can't evaluate field X"),
    ("    victorops_configs: [{routing_key: '{{ if }}', api_key: k}]", "routing_key", "template: "),
    ("    victorops_configs: [{routing_key: r, api_key: k, state_message: '{{ .X }}'}]", "state_message",
     "can't evaluate field X"),
    ("    pushover_configs: [{user_key: u, token: t, url: '{{ template \"nope\" . }}'}]", "url",
     'template "nope" not defined'),
    ("    sns_configs: [{topic_arn: '{{ .CommonLabels.topic', subject: s}]", "topic_arn", "template: "),
    ("    telegram_configs: [{bot_token: t, chat_id: 1, message: '{{ .X }}'}]", "message", "can't evaluate field X"),
    ("    discord_configs: [{webhook_url: 'http://127.0.0.1:9/', title: '{{ .X }}'}]", "title",
     "can't evaluate field X"),
    ("    msteamsv2_configs: [{webhook_url: 'http://127.0.0.1:9/', text: '{{ range .Alerts }}'}]", "text",
     "template: "),
])
def test_kind_texts_are_checked_at_load(receiver: str, field: str, message: str) -> None:
    """Every kind's templates (texts, details, responders, routing keys, ARNs) parsed at load with the
    templates they call, as every receiver's: the error names the field and its line."""
    with pytest.raises(SourceError) as exc:
        load_notify_config(HEAD + receiver + "\n", "am.yml")
    assert exc.value.field is not None and exc.value.field.endswith(field), exc.value
    assert exc.value.line == 4 and message in str(exc.value), exc.value


@pytest.mark.parametrize(("receiver", "message"), [
    ("    pushover_configs: [{user_key: u, token: t, html: true, monospace: true}]", "mutually exclusive"),
    ("    pushover_configs: [{user_key: u, token: t, retry: soon}]", "retry"),
    ("    telegram_configs: [{bot_token: t, chat_id: '@ops'}]", "chat_id must be an integer"),
    ("    sns_configs: [{topic_arn: a, sigv4: {access_key: a}}]", "Access key and Secret Key"),
    ("    sns_configs: [{topic_arn: a, sigv4: {regoin: x}}]", "field regoin not found in sigv4"),
    ("    webex_configs: [{room_id: r, http_config: {authorization: {credentials: c}, bogus: 1}}]", "bogus"),
])
def test_kind_settings_are_checked_at_load(receiver: str, message: str) -> None:
    with pytest.raises(SourceError) as exc:
        load_notify_config(HEAD + receiver + "\n", "am.yml")
    assert message in str(exc.value)


def test_empty_global_and_http_config_fields_load() -> None:
    cfg = load_notify_config("global:\n" + HEAD + "    webhook_configs:\n      - url: http://127.0.0.1:9/\n"
                             "        http_config: {follow_redirects: false, proxy_from_environment: true,"
                             " proxy_url: 'http://127.0.0.1:3128'}\n")
    assert cfg.global_.resolve_timeout == 300.0
    assert cfg.receivers["r"].webhook_configs[0].http_config.follow_redirects is False  # type: ignore[union-attr]


def test_notify_check_prints_like_amtool(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["notify", "check", str(CORPUS / "wk-time-intervals.yml")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Checking '{CORPUS / 'wk-time-intervals.yml'}'  SUCCESS\nFound:\n")
    assert " - 3 receivers\n" in out and " - 3 time intervals\n" in out
    assert main(["notify", "check", str(CORPUS / "wk-bad-webhook-url.yml")]) == 1
    assert "FAILED: " in capsys.readouterr().out


def test_the_readme_receivers_example_loads_with_one_receiver_per_kind() -> None:
    cfg = load_notify_config_file(str(Path(__file__).parents[2] / "examples/alertmanager-receivers.yml"))
    kinds = {name.split("[")[0] for r in cfg.receivers.values() for name, _ in r.integrations()}
    assert kinds == {"opsgenie", "victorops", "pushover", "sns", "msteams", "msteamsv2", "discord", "telegram", "webex",
                     "wechat"}
