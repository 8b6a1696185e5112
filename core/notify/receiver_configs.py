"""Alertmanager's `global` and `receivers` sections as pydantic models: the standard integrations
(webhook, Slack, email, PagerDuty) with Alertmanager's defaults, plus two Watchkeeper extensions,
`alertmanager_configs` (push to an existing Alertmanager) and `command_configs` (run a command)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.promql.evaluator import PromQLError
from core.promql.evaluator import parse as parse_promql
from core.slo.go_format import parse_prom_duration


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def duration(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        return parse_prom_duration(str(value))
    except ValueError as exc:
        raise ValueError(str(exc)) from None


class Authorization(_Strict):
    type: str = "Bearer"
    credentials: str = ""


class HttpConfig(_Strict):
    authorization: Authorization | None = None
    bearer_token: str = ""


class GlobalConfig(_Strict):
    resolve_timeout: float = 300.0
    smtp_from: str = ""
    smtp_smarthost: str = ""
    smtp_hello: str = "localhost"
    smtp_auth_username: str = ""
    smtp_auth_password: str = ""
    smtp_require_tls: bool = True
    slack_api_url: str = ""
    pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"
    http_config: HttpConfig | None = None

    _d = field_validator("resolve_timeout", mode="before")(duration)


class WebhookConfig(_Strict):
    url: str
    send_resolved: bool = True
    max_alerts: int = Field(default=0, ge=0)
    http_config: HttpConfig | None = None


class SlackConfig(_Strict):
    api_url: str = ""
    channel: str = ""
    username: str = "Watchkeeper"
    title: str = ""  # empty: Alertmanager's default look, `[FIRING:2] <group label values>`
    text: str = ""
    color: str = ""
    send_resolved: bool = False
    http_config: HttpConfig | None = None


class EmailConfig(_Strict):
    to: str
    from_: str = Field(default="", alias="from")
    smarthost: str = ""
    hello: str = ""
    auth_username: str = ""
    auth_password: str = ""
    require_tls: bool | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    html: str = ""
    text: str = ""
    send_resolved: bool = False


class PagerdutyConfig(_Strict):
    routing_key: str
    url: str = ""
    severity: str = ""
    description: str = ""
    client: str = "Watchkeeper"
    client_url: str = ""
    details: dict[str, str] = Field(default_factory=dict)
    send_resolved: bool = True
    http_config: HttpConfig | None = None


class AlertmanagerPushConfig(_Strict):
    """Watchkeeper extension: push the alerts to an Alertmanager's v2 API (Watchkeeper as its source)."""

    url: str
    send_resolved: bool = True


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
    send_resolved: bool = True
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

    def integrations(self) -> list[tuple[str, BaseModel]]:
        """(`kind[i]`, config) for every integration, in Alertmanager's order."""
        out: list[tuple[str, BaseModel]] = []
        for kind in ("webhook", "slack", "email", "pagerduty", "alertmanager", "command"):
            for i, c in enumerate(getattr(self, f"{kind}_configs")):
                out.append((f"{kind}[{i}]", c))
        return out
