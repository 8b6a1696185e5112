"""Alertmanager's `global` and `receivers` sections as pydantic models: the standard integrations
(webhook, Slack, email, PagerDuty) with Alertmanager's defaults, plus two Watchkeeper extensions,
`alertmanager_configs` (push to an existing Alertmanager) and `command_configs` (run a command).
Alertmanager's other kinds (opsgenie ... wechat) are core/notify/receiver_kinds.py.
Keys Alertmanager has that delivery does not use yet (proxy, OAuth2, Slack attachments' extras) are
accepted so that configs from the wild load unchanged."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationInfo, field_validator, model_validator

from watchkeeper.core.notify.am_url import parse_host_port, parse_url
from watchkeeper.core.notify.exclusive_keys import at_most_one_of, one_of
from watchkeeper.core.notify.receiver_kinds import (
    KINDS,
    DiscordConfig,
    MSTeamsConfig,
    MSTeamsV2Config,
    OpsGenieConfig,
    PushoverConfig,
    SNSConfig,
    TelegramConfig,
    VictorOpsConfig,
    WebexConfig,
    WechatConfig,
)
from watchkeeper.core.notify.sms import SmsConfig
from watchkeeper.core.promql.evaluator import PromQLError
from watchkeeper.core.promql.evaluator import parse as parse_promql
from watchkeeper.core.slo.go_format import parse_prom_duration


class _Strict(BaseModel):
    # coerce_numbers_to_str: Go's yaml.v2 decodes a number into a string field as its text (`details: {a: 1}`).
    model_config = ConfigDict(extra="forbid", populate_by_name=True, coerce_numbers_to_str=True)


# A YAML boolean only: Go refuses `send_resolved: 'true'` (a string), which pydantic's lax mode would take.
Bool = Annotated[bool, Strict()]


def duration(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        return parse_prom_duration(str(value))
    except ValueError as exc:
        raise ValueError(str(exc)) from None


def am_duration(value: Any) -> float:
    """Alertmanager's model.Duration: a Prometheus duration string. A YAML number is its text, as in Go, so
    `group_wait: 30` is refused as amtool refuses it, and `0` is zero."""
    text = json.dumps(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    if text == "0":
        return 0.0
    return duration(str(text))


_TLS_KEYS = {"ca", "ca_file", "ca_ref", "cert", "cert_file", "cert_ref", "key", "key_file", "key_ref", "server_name",
             "insecure_skip_verify", "min_version", "max_version"}


def _tls_config(value: Any) -> Any:
    """prometheus/common's TLSConfig keys: a typo is refused, as amtool refuses it."""
    if isinstance(value, dict):
        for key in value:
            if key not in _TLS_KEYS:
                raise ValueError(f"field {key} not found in tls_config")
        if "insecure_skip_verify" in value and not isinstance(value["insecure_skip_verify"], bool):
            raise ValueError("tls_config.insecure_skip_verify must be true or false")
    return value


class Authorization(_Strict):
    type: str = "Bearer"
    credentials: str = ""
    credentials_file: str = ""


class HttpConfig(_Strict):
    """Prometheus' common HTTPClientConfig. Delivery uses the credentials, `tls_config` and
    `follow_redirects` (sinks/channels/base.py); proxies and OAuth2 load but are not used yet."""

    authorization: Authorization | None = None
    bearer_token: str = ""
    bearer_token_file: str = ""
    basic_auth: dict[str, Any] | None = None
    oauth2: dict[str, Any] | None = None
    tls_config: dict[str, Any] | None = None
    proxy_url: str = ""
    no_proxy: str = ""
    proxy_from_environment: Bool = False
    proxy_connect_header: dict[str, Any] | None = None
    follow_redirects: Bool = True
    enable_http2: Bool = True

    _tls = field_validator("tls_config", mode="before")(_tls_config)

    @model_validator(mode="after")
    def _validate(self) -> HttpConfig:
        """prometheus/common's HTTPClientConfig.Validate, with its messages."""
        bearer = self.bearer_token or self.bearer_token_file
        at_most_one_of(vars(self), "bearer_token", "bearer_token_file")
        if (self.basic_auth is not None or self.oauth2 is not None) and bearer:
            raise ValueError("at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured")
        at_most_one_of(self.basic_auth or {}, "password", "password_file", "basic_auth ")
        if self.authorization is not None:
            a = self.authorization
            if bearer:
                raise ValueError("authorization is not compatible with bearer_token & bearer_token_file")
            at_most_one_of(vars(a), "credentials", "credentials_file", "authorization ")
            if a.type.strip().lower() == "basic":
                raise ValueError('authorization type cannot be set to "basic", use "basic_auth" instead')
            if self.basic_auth is not None or self.oauth2 is not None:
                raise ValueError("at most one of basic_auth, oauth2 & authorization must be configured")
        if self.oauth2 is not None:
            o = self.oauth2
            if self.basic_auth is not None:
                raise ValueError("at most one of oauth2 & basic_auth must be configured")
            if not o.get("client_id"):
                raise ValueError("oauth2 client_id must be configured")
            if not (o.get("client_secret") or o.get("client_secret_file")):
                raise ValueError("either oauth2 client_secret or client_secret_file must be configured")
            if not o.get("token_url"):
                raise ValueError("oauth2 token_url must be configured")
            at_most_one_of(o, "client_secret", "client_secret_file", "oauth2 ")
        return self



def _url_or_unset(value: Any, info: ValidationInfo) -> Any:
    """An Alertmanager URL field: YAML null leaves it unset (the default); anything else, `''` included,
    must be a URL Alertmanager's parseURL takes."""
    if value is None:
        return _URL_DEFAULTS.get(info.field_name or "", "")
    return parse_url(value)


_URL_DEFAULTS = {"pagerduty_url": "https://events.pagerduty.com/v2/enqueue"}


def _host_port(value: Any) -> str:
    """An SMTP smarthost: host:port as Alertmanager's HostPort takes it; null or `''` is unset."""
    return "" if value is None else parse_host_port(value)


class GlobalConfig(_Strict):
    resolve_timeout: float = 300.0
    smtp_from: str = ""
    smtp_smarthost: str = ""
    smtp_hello: str = "localhost"
    smtp_auth_username: str = ""
    smtp_auth_password: str = ""
    smtp_auth_password_file: str = ""
    smtp_auth_secret: str = ""
    smtp_auth_identity: str = ""
    smtp_require_tls: Bool = True
    smtp_tls_config: dict[str, Any] | None = None
    slack_api_url: str = ""
    slack_api_url_file: str = ""
    pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"
    opsgenie_api_url: str = ""
    opsgenie_api_key: str = ""
    opsgenie_api_key_file: str = ""
    victorops_api_url: str = ""
    victorops_api_key: str = ""
    victorops_api_key_file: str = ""
    wechat_api_url: str = ""
    wechat_api_secret: str = ""
    wechat_api_corp_id: str = ""
    telegram_api_url: str = ""
    webex_api_url: str = ""
    http_config: HttpConfig | None = None

    _d = field_validator("resolve_timeout", mode="before")(am_duration)
    _tls = field_validator("smtp_tls_config", mode="before")(_tls_config)
    _h = field_validator("smtp_smarthost", mode="before")(_host_port)
    _u = field_validator("slack_api_url", "pagerduty_url", "opsgenie_api_url", "victorops_api_url",
                         "wechat_api_url", "telegram_api_url", "webex_api_url", mode="before")(_url_or_unset)

    @model_validator(mode="after")
    def _one_of(self) -> GlobalConfig:
        for a, b in (("slack_api_url", "slack_api_url_file"), ("smtp_auth_password", "smtp_auth_password_file"),
                     ("opsgenie_api_key", "opsgenie_api_key_file"), ("victorops_api_key", "victorops_api_key_file")):
            at_most_one_of(vars(self), a, b)
        return self


class WebhookConfig(_Strict):
    url: str = ""
    url_file: str = ""
    send_resolved: Bool = True
    max_alerts: int = Field(default=0, ge=0)
    timeout: Any = None
    http_config: HttpConfig | None = None

    _u = field_validator("url", mode="before")(_url_or_unset)

    @model_validator(mode="after")
    def _one(self) -> WebhookConfig:
        one_of(vars(self), "url", "url_file")
        return self


def _t(name: str, data: str = ".") -> str:
    """`{{ template "name" . }}`: a field's default is Alertmanager's default template name."""
    return f'{{{{ template "{name}" {data} }}}}'


class SlackConfig(_Strict):
    """Text fields are templates (core/notify/templates.py); their defaults are Alertmanager's."""

    api_url: str = ""
    channel: str = ""
    username: str = _t("slack.default.username")
    title: str = _t("slack.default.title")
    text: str = _t("slack.default.text")
    color: str = '{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}'
    send_resolved: Bool = False
    http_config: HttpConfig | None = None
    api_url_file: str = ""
    title_link: str = _t("slack.default.titlelink")
    pretext: str = _t("slack.default.pretext")
    footer: str = _t("slack.default.footer")
    fallback: str = _t("slack.default.fallback")
    callback_id: str = _t("slack.default.callbackid")
    icon_emoji: str = _t("slack.default.iconemoji")
    icon_url: str = _t("slack.default.iconurl")
    # Alertmanager's other Slack keys: accepted (and their templates checked), not yet sent.
    fields: list[dict[str, Any]] = Field(default_factory=list)
    short_fields: Bool = False
    image_url: str = ""
    thumb_url: str = ""
    link_names: Bool = False
    mrkdwn_in: list[str] = Field(default_factory=lambda: ["fallback", "pretext", "text"])
    actions: list[dict[str, Any]] = Field(default_factory=list)
    message_text: str = ""
    timeout: Any = None

    _u = field_validator("api_url", mode="before")(_url_or_unset)

    @model_validator(mode="after")
    def _one(self) -> SlackConfig:
        for f in self.fields:  # Alertmanager's SlackField and SlackAction UnmarshalYAML
            if not f.get("title"):
                raise ValueError("missing title in Slack field configuration")
            if not f.get("value"):
                raise ValueError("missing value in Slack field configuration")
        for a in self.actions:
            if not a.get("type"):
                raise ValueError("missing type in Slack action configuration")
            if not a.get("text"):
                raise ValueError("missing text in Slack action configuration")
            if not (a.get("url") or a.get("name")):
                raise ValueError("missing name or url in Slack action configuration")
            if isinstance(a.get("confirm"), dict) and not a["confirm"].get("text"):
                raise ValueError("missing text in Slack confirmation configuration")
        at_most_one_of(vars(self), "api_url", "api_url_file")
        return self


class EmailConfig(_Strict):
    to: str
    from_: str = Field(default="", alias="from")
    smarthost: str = ""
    hello: str = ""
    auth_username: str = ""
    auth_password: str = ""
    auth_password_file: str = ""
    auth_secret: str = ""
    auth_identity: str = ""
    tls_config: dict[str, Any] | None = None
    require_tls: Bool | None = None
    headers: dict[str, str] = Field(default_factory=dict)  # Subject defaults to email.default.subject
    html: str = _t("email.default.html")
    text: str = ""  # empty: Watchkeeper's plain-text part (Alertmanager sends none)
    send_resolved: Bool = False

    _h = field_validator("smarthost", mode="before")(_host_port)
    _tls = field_validator("tls_config", mode="before")(_tls_config)

    @field_validator("to")
    @classmethod
    def _to(cls, v: str) -> str:
        if not v:
            raise ValueError("missing to address in email config")
        return v


class PagerdutyConfig(_Strict):
    routing_key: str = ""
    routing_key_file: str = ""
    service_key: str = ""  # Events API v1: loaded; delivery uses routing_key (Events API v2)
    service_key_file: str = ""
    images: list[dict[str, Any]] = Field(default_factory=list)
    links: list[dict[str, Any]] = Field(default_factory=list)
    source: str = ""
    class_: str = Field(default="", alias="class")
    component: str = ""
    group: str = ""
    url: str = ""
    severity: str = ""
    description: str = _t("pagerduty.default.description")
    client: str = _t("pagerduty.default.client")
    client_url: str = _t("pagerduty.default.clientURL")
    details: dict[str, str] = Field(default_factory=dict)  # values are templates
    send_resolved: Bool = True
    http_config: HttpConfig | None = None

    _u = field_validator("url", mode="before")(_url_or_unset)

    @model_validator(mode="after")
    def _keys(self) -> PagerdutyConfig:
        if not (self.routing_key or self.routing_key_file or self.service_key or self.service_key_file):
            raise ValueError("missing service or routing key in PagerDuty config")
        at_most_one_of(vars(self), "routing_key", "routing_key_file")
        at_most_one_of(vars(self), "service_key", "service_key_file")
        return self


class AlertmanagerPushConfig(_Strict):
    """Watchkeeper extension: push the alerts to an Alertmanager's v2 API (Watchkeeper as its source)."""

    url: str
    send_resolved: Bool = True


class VerifyConfig(_Strict):
    """Watchkeeper extension (core/notify/remediation.py): after a command hook ran for a firing alert, check
    that it helped, by an HTTP probe (as the probe producer judges one: any 2xx, or `expect_status`, and
    `body_match`), a command (exit 0 is healthy) or a PromQL expression over the samples stored since the
    command ran (healthy when it returns a result), every `interval` for up to `within`; the outcome goes to
    `report_to` (default: the hook's receiver's other integrations), a failure escalates the group."""

    http: str = ""
    expect_status: list[int] = Field(default_factory=list)
    body_match: str = ""
    command: list[str] = Field(default_factory=list)
    promql: str = ""
    within: float = 60.0
    interval: float = 5.0
    timeout: float = 5.0
    report_to: list[str] = Field(default_factory=list)

    _d = field_validator("within", "interval", "timeout", mode="before")(duration)

    @model_validator(mode="after")
    def _one_check(self) -> VerifyConfig:
        if sum(map(bool, (self.http, self.command, self.promql))) != 1:
            raise ValueError("verify needs exactly one of `http` (a URL to probe), `command` (exit 0: healthy) or "
                             "`promql` (healthy when it returns a result, e.g. probe_success{job=\"web\"} == 1)")
        if self.promql:
            try:
                parse_promql(self.promql)
            except PromQLError as exc:
                raise ValueError(str(exc)) from None
        if self.http and not self.http.startswith(("http://", "https://")):
            raise ValueError(f"verify.http must be an http:// or https:// URL, not {self.http!r}")
        if self.interval <= 0 or self.within <= 0 or self.timeout <= 0:
            raise ValueError("verify's within, interval and timeout must be greater than 0")
        return self


class CommandConfig(_Strict):
    """Watchkeeper extension: run `command` (no shell) with the notification as JSON on stdin and `WK_*`
    environment variables; killed after `timeout`. For auto-remediation."""

    command: list[str] = Field(min_length=1)
    timeout: float = 30.0
    env: dict[str, str] = Field(default_factory=dict)
    send_resolved: Bool = True
    # Of stdout and of stderr, each, at most this much is read into memory; the rest is drained and counted.
    max_output_bytes: int = Field(default=64 * 1024, ge=0)
    # Verified remediation (core/notify/remediation.py): check the command's work; at most one run per
    # alert per cooldown.
    verify: VerifyConfig | None = None
    cooldown: float = 1800.0

    _d = field_validator("timeout", "cooldown", mode="before")(duration)


class ReceiverConfig(_Strict):
    name: str = Field(min_length=1)
    webhook_configs: list[WebhookConfig] = Field(default_factory=list)
    slack_configs: list[SlackConfig] = Field(default_factory=list)
    email_configs: list[EmailConfig] = Field(default_factory=list)
    pagerduty_configs: list[PagerdutyConfig] = Field(default_factory=list)
    alertmanager_configs: list[AlertmanagerPushConfig] = Field(default_factory=list)
    command_configs: list[CommandConfig] = Field(default_factory=list)
    # Alertmanager's other kinds (core/notify/receiver_kinds.py; delivered by sinks/channels/<kind>.py).
    opsgenie_configs: list[OpsGenieConfig] = Field(default_factory=list)
    victorops_configs: list[VictorOpsConfig] = Field(default_factory=list)
    pushover_configs: list[PushoverConfig] = Field(default_factory=list)
    sns_configs: list[SNSConfig] = Field(default_factory=list)
    msteams_configs: list[MSTeamsConfig] = Field(default_factory=list)
    msteamsv2_configs: list[MSTeamsV2Config] = Field(default_factory=list)
    discord_configs: list[DiscordConfig] = Field(default_factory=list)
    telegram_configs: list[TelegramConfig] = Field(default_factory=list)
    webex_configs: list[WebexConfig] = Field(default_factory=list)
    wechat_configs: list[WechatConfig] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    sms_configs: list[SmsConfig] = Field(default_factory=list)  # extension: core/notify/sms.py

    def integrations(self) -> list[tuple[str, BaseModel]]:
        """(`kind[i]`, config) for every integration, in Alertmanager's order."""
        out: list[tuple[str, BaseModel]] = []
        for kind in ("webhook", "slack", "email", "pagerduty", *KINDS, "alertmanager", "command", "sms"):
            for i, c in enumerate(getattr(self, f"{kind}_configs")):
                out.append((f"{kind}[{i}]", c))
        return out
