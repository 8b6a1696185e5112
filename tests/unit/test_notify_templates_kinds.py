"""The other receiver kinds (Opsgenie ... WeChat) render with the config's templates: a text left out is
Alertmanager's default template name for it (DEFAULT_FIELDS), which a `templates:` file may redefine; a
text given calls the files' templates on the full template data; HTML is escaped where Alertmanager
escapes it (Telegram's HTML parse mode, Pushover's `html`); a template that fails on the data fails the
delivery, not retried."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from watchkeeper.core.notify.config import NotifyConfig, load_notify_config, load_notify_config_file
from watchkeeper.core.notify.default_templates import DEFAULT_FIELDS
from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.receiver_kinds import KINDS
from watchkeeper.schemas.alerts import AlertEvent
from watchkeeper.sinks.channels import KIND_CHANNELS, DeliveryError, build_channels
from watchkeeper.sinks.channels.discord import discord_message
from watchkeeper.sinks.channels.msteams import adaptive_card, message_card
from watchkeeper.sinks.channels.opsgenie import opsgenie_requests
from watchkeeper.sinks.channels.pushover import pushover_form
from watchkeeper.sinks.channels.sns import publish_form
from watchkeeper.sinks.channels.telegram import telegram_message
from watchkeeper.sinks.channels.victorops import victorops_event
from watchkeeper.sinks.channels.webex import webex_message
from watchkeeper.sinks.channels.wechat import wechat_message

HEAD = "route: {receiver: r}\nreceivers:\n  - name: r\n"
SUBJECT = "[FIRING:1] web (PodCrash api-1 critical)"


def note(summary: str = "api-1 restarts", status: str = "firing") -> Notification:
    alert = AlertEvent(fingerprint="0" * 16, rule="PodCrash", state=status,  # type: ignore[arg-type]
                       labels={"alertname": "PodCrash", "namespace": "web", "severity": "critical", "pod": "api-1"},
                       annotations={"summary": summary}, value=1.0, starts_at=1_700_000_000.0,
                       ends_at=1_700_000_500.0 if status == "resolved" else None, event_time=1_700_000_000.0)
    return Notification("r", "x[0]", '{}:{namespace="web"}', {"namespace": "web"}, [alert], 1_700_000_600.0,
                        "http://127.0.0.1:9093")


# One minimal config per kind and the function that builds what it sends.
KIND_CONFIGS: dict[str, str] = {
    "opsgenie": "opsgenie_configs: [{api_key: k%s}]",
    "victorops": "victorops_configs: [{api_key: k, routing_key: rk%s}]",
    "pushover": "pushover_configs: [{user_key: u, token: t%s}]",
    "sns": "sns_configs: [{topic_arn: 'arn:aws:sns:eu-west-1:1:a'%s}]",
    "msteams": "msteams_configs: [{webhook_url: 'http://127.0.0.1:9/t'%s}]",
    "msteamsv2": "msteamsv2_configs: [{webhook_url: 'http://127.0.0.1:9/t'%s}]",
    "discord": "discord_configs: [{webhook_url: 'http://127.0.0.1:9/d'%s}]",
    "telegram": "telegram_configs: [{bot_token: t, chat_id: 1%s}]",
    "webex": "webex_configs: [{room_id: r, http_config: {authorization: {credentials: c}}%s}]",
    "wechat": "wechat_configs: [{api_secret: s, corp_id: c%s}]",
}


def config(kind: str, extra: str = "", head: str = HEAD) -> NotifyConfig:
    return load_notify_config(head + "    " + KIND_CONFIGS[kind] % extra + "\n", "am.yml")


def sent(kind: str, cfg: NotifyConfig, n: Notification) -> Any:
    """What the kind's channel would send for `n`, built by the channel module's pure function."""
    c = getattr(cfg.receivers["r"], f"{kind}_configs")[0]
    t = cfg.notify_templates
    build = {
        "opsgenie": lambda: opsgenie_requests(c, n, t)[0].body,
        "victorops": lambda: victorops_event(c, n, t),
        "pushover": lambda: pushover_form(c, "tok", "usr", n, t),
        "sns": lambda: publish_form(c, n, "id-1", t),
        "msteams": lambda: message_card(c, n, t),
        "msteamsv2": lambda: adaptive_card(c, n, t),
        "discord": lambda: discord_message(c, n, t),
        "telegram": lambda: telegram_message(c, n, t),
        "webex": lambda: webex_message(c, n, t),
        "wechat": lambda: wechat_message(c, n, t),
    }
    return build[kind]()


def test_every_kind_with_a_channel_has_its_default_fields() -> None:
    assert sorted(DEFAULT_FIELDS) == sorted(KINDS) == sorted(k.__name__.removesuffix("Channel").lower()
                                                             for k in KIND_CHANNELS.values())


# The field that carries each kind's subject, and where it lands in what is sent.
SUBJECT_FIELD = {
    "opsgenie": ("message", lambda b: b["message"]),
    "victorops": ("entity_display_name", lambda b: b["entity_display_name"]),
    "pushover": ("title", lambda b: b["title"]),
    "sns": ("subject", lambda b: b["Subject"]),
    "msteams": ("title", lambda b: b["title"]),
    "msteamsv2": ("title", lambda b: b["attachments"][0]["content"]["body"][0]["text"]),
    "discord": ("title", lambda b: b["embeds"][0]["title"]),
}


@pytest.mark.parametrize("kind", sorted(SUBJECT_FIELD))
def test_a_field_left_out_is_alertmanagers_default_name_and_a_templates_file_redefines_it(
        kind: str, tmp_path: Path) -> None:
    field, where = SUBJECT_FIELD[kind]
    assert where(sent(kind, config(kind), note())) == SUBJECT
    name = DEFAULT_FIELDS[kind][field].split('"')[1]  # e.g. opsgenie.default.message
    (tmp_path / "org.tmpl").write_text(f'{{{{ define "{name}" }}}}{{{{ .CommonLabels.pod | toUpper }}}} is down'
                                       "{{ end }}\n")
    (tmp_path / "am.yml").write_text(HEAD.replace("receivers:", "templates: ['*.tmpl']\nreceivers:")
                                     + "    " + KIND_CONFIGS[kind] % "" + "\n")
    assert where(sent(kind, load_notify_config_file(str(tmp_path / "am.yml")), note())) == "API-1 is down"


@pytest.mark.parametrize("kind", sorted(SUBJECT_FIELD))
def test_a_field_given_calls_the_files_templates_on_the_full_data(kind: str, tmp_path: Path) -> None:
    field, where = SUBJECT_FIELD[kind]
    (tmp_path / "org.tmpl").write_text('{{ define "org.pods" }}{{ range .Alerts.Firing }}{{ .Labels.pod }} since '
                                       '{{ .StartsAt.Format "15:04" }}{{ end }}{{ end }}\n')
    (tmp_path / "am.yml").write_text(HEAD.replace("receivers:", "templates: ['*.tmpl']\nreceivers:") + "    "
                                     + KIND_CONFIGS[kind] % f", {field}: '{{{{ template \"org.pods\" . }}}}'" + "\n")
    assert where(sent(kind, load_notify_config_file(str(tmp_path / "am.yml")), note())) == "api-1 since 22:13"


def test_opsgenie_details_responders_and_tags_are_templates() -> None:
    cfg = config("opsgenie", ", details: {pods: '{{ len .Alerts }}'}, tags: '{{ .CommonLabels.namespace }},x',"
                             " responders: [{name: '{{ .GroupLabels.namespace | title }}-oncall', type: team}]")
    body = sent("opsgenie", cfg, note())
    assert body["details"]["pods"] == "1" and body["tags"] == ["web", "x"]
    assert body["responders"] == [{"name": "Web-oncall", "type": "team"}]
    assert body["source"] == "http://127.0.0.1:9093/#/alerts?receiver=r"  # opsgenie.default.source


def test_sns_arn_and_attributes_and_victorops_custom_fields_are_templates() -> None:
    form = sent("sns", config("sns", ", attributes: {ns: '{{ .GroupLabels.namespace }}'}"), note())
    assert form["MessageAttributes.entry.1.Value.StringValue"] == "web"
    event = sent("victorops", config("victorops", ", custom_fields: {pods: '{{ len .Alerts.Firing }}'}"), note())
    assert event["pods"] == "1" and event["monitoring_tool"] == "Alertmanager"


def test_every_kinds_defaults_render_without_a_templates_file() -> None:
    for kind in KIND_CONFIGS:
        assert sent(kind, config(kind), note()), kind
    assert sent("wechat", config("wechat"), note())["text"]["content"].startswith(
        SUBJECT + "\napi-1 restarts\nAlerts Firing:\nLabels:\n - alertname = PodCrash\n")


def test_telegram_html_mode_escapes_every_message_as_alertmanager_does() -> None:
    """Alertmanager renders Telegram's message with html/template in the HTML parse mode, a configured
    message too; in another parse mode the text is sent as rendered."""
    tricky = note(summary="load <5 & \"rising\"")
    default = sent("telegram", config("telegram"), tricky)["text"]
    assert "summary = load &lt;5 &amp; &#34;rising&#34;" in default
    given = sent("telegram", config("telegram", ", message: '{{ .CommonAnnotations.summary }}'"), tricky)
    assert given["text"] == "load &lt;5 &amp; &#34;rising&#34;" and given["parse_mode"] == "HTML"
    markdown = config("telegram", ", parse_mode: MarkdownV2, message: '{{ .CommonAnnotations.summary }}'")
    plain = sent("telegram", markdown, tricky)
    assert plain["text"] == 'load <5 & "rising"'


def test_pushover_html_escapes_the_message_only_with_html_on() -> None:
    tricky = note(summary="a<b")
    on = sent("pushover", config("pushover", ", html: true, message: '<b>{{ .CommonAnnotations.summary }}</b>'"),
              tricky)
    off = sent("pushover", config("pushover", ", message: '<b>{{ .CommonAnnotations.summary }}</b>'"), tricky)
    assert (on["message"], on["html"]) == ("<b>a&lt;b</b>", "1") and off["message"] == "<b>a<b</b>"


def test_pushover_priority_defaults_to_alertmanagers_emergency_while_firing() -> None:
    cfg = config("pushover")
    assert sent("pushover", cfg, note())["priority"] == "2"
    assert sent("pushover", cfg, note(status="resolved"))["priority"] == "0"


def test_a_template_failing_on_the_data_fails_the_delivery_without_retry() -> None:
    """`index` of an alert that is not there: known only with the data, so a delivery error, final."""
    cfg = config("discord", ", title: '{{ (index .Alerts 3).Labels.pod }}'")

    async def run() -> DeliveryError:
        async with aiohttp.ClientSession() as s:
            (ch,) = build_channels(cfg.receivers["r"], cfg.global_, s, None, cfg.notify_templates).values()
            with pytest.raises(DeliveryError) as exc:
                await ch.send(note())
            return exc.value

    err = asyncio.run(run())
    assert not err.retryable and str(err).startswith("template: ")


def test_build_channels_gives_every_kind_the_configs_templates(tmp_path: Path) -> None:
    (tmp_path / "org.tmpl").write_text('{{ define "__subject" }}ORG {{ .Status }}{{ end }}\n')
    receivers = "".join(f"    {KIND_CONFIGS[k] % ''}\n" for k in KIND_CONFIGS)
    (tmp_path / "am.yml").write_text(HEAD.replace("receivers:", "templates: ['*.tmpl']\nreceivers:") + receivers)
    cfg = load_notify_config_file(str(tmp_path / "am.yml"))

    async def run() -> dict[str, Any]:
        async with aiohttp.ClientSession() as s:
            return build_channels(cfg.receivers["r"], cfg.global_, s, None, cfg.notify_templates)

    channels = asyncio.run(run())
    assert len(channels) == len(KIND_CONFIGS)
    assert all(getattr(ch, "templates", None) is cfg.notify_templates for ch in channels.values())
