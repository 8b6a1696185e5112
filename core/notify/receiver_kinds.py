"""Alertmanager's receiver kinds beyond webhook, Slack, email and PagerDuty: opsgenie, victorops, pushover,
sns, msteams, msteamsv2, discord, telegram, webex, wechat. Every key is checked against Alertmanager's
(config/notifiers.go, v0.25 plus the fields added up to v0.29) and its required-field rules are applied,
with its messages, so a typo is refused at load, not ignored. Values are kept as written and read by the
kind's channel (sinks/channels/<kind>.py), which applies Alertmanager's defaults (the text keys' default
template names: core/notify/default_templates.py's DEFAULT_FIELDS); every value that holds a template
is checked at load, like every receiver's (core/notify/config.py)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator

from watchkeeper.core.notify.exclusive_keys import at_most_one_of, one_of
from watchkeeper.core.slo.go_format import parse_prom_duration

_COMMON = ("send_resolved", "http_config")


class KindConfig(BaseModel):
    """Keys are Alertmanager's for the kind; values are kept as given, read with `get`."""

    model_config = ConfigDict(extra="allow")
    KEYS: ClassVar[tuple[str, ...]] = ()
    URLS: ClassVar[tuple[str, ...]] = ()  # keys that are Alertmanager URLs (core/notify/am_url.py)
    send_resolved: bool = True  # Alertmanager's default for every kind here but WeChat

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError("expected a mapping")
        for key in data:
            if key not in _COMMON and key not in cls.KEYS:
                raise ValueError(f"field {key} not found in {cls.__name__}")
        for key in ("send_resolved",):
            if key in data and not isinstance(data[key], bool):
                raise ValueError(f"{key} must be true or false")
        if data.get("http_config") is not None:
            from watchkeeper.core.notify.receiver_configs import HttpConfig  # here: that module imports this one

            HttpConfig.model_validate(data["http_config"])
        cls.check(data)
        return data

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        """The kind's own rules (Alertmanager's UnmarshalYAML)."""

    def get(self, key: str, default: Any = None) -> Any:
        value = (self.model_extra or {}).get(key)
        return default if value is None else value

    def http(self) -> Any:
        """The integration's `http_config` as core.notify.receiver_configs.HttpConfig (None if unset)."""
        from watchkeeper.core.notify.receiver_configs import HttpConfig

        raw = self.get("http_config")
        return None if raw is None else HttpConfig.model_validate(raw)


class OpsGenieConfig(KindConfig):
    URLS = ("api_url",)
    KEYS = ("api_key", "api_key_file", "api_url", "message", "description", "source", "details", "entity",
            "responders", "actions", "tags", "note", "priority", "update_alerts")

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        at_most_one_of(data, "api_key", "api_key_file")
        for r in data.get("responders") or []:
            if not isinstance(r, dict) or not (r.get("id") or r.get("name") or r.get("username")):
                raise ValueError("opsGenieConfig responder must have at least an id, a name or a username "
                                 "defined")
            kind = str(r.get("type", ""))
            if kind not in ("team", "teams", "user", "escalation", "schedule") and "{{" not in kind:
                raise ValueError(f"opsGenieConfig responder {r} has invalid type")


class VictorOpsConfig(KindConfig):
    URLS = ("api_url",)
    KEYS = ("api_key", "api_key_file", "api_url", "routing_key", "message_type", "state_message",
            "entity_display_name", "monitoring_tool", "custom_fields")
    RESERVED: ClassVar[tuple[str, ...]] = ("routing_key", "message_type", "state_message", "entity_display_name",
                                           "monitoring_tool", "entity_id", "entity_state")

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        if not data.get("routing_key"):
            raise ValueError("missing Routing key in VictorOps config")
        at_most_one_of(data, "api_key", "api_key_file")
        for k in data.get("custom_fields") or {}:
            if k in cls.RESERVED:
                raise ValueError(f"victorOps config contains custom field {k} which cannot be used as it "
                                 "conflicts with the fixed/static fields")


class PushoverConfig(KindConfig):
    KEYS = ("user_key", "user_key_file", "token", "token_file", "title", "message", "url", "url_title",
            "device", "sound", "priority", "retry", "expire", "ttl", "html", "monospace",
            "api_url")  # api_url: Watchkeeper's (Alertmanager's is fixed), for a relay or a test server

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        if not (data.get("user_key") or data.get("user_key_file")):
            raise ValueError("missing user key in Pushover config")
        if not (data.get("token") or data.get("token_file")):
            raise ValueError("missing token in Pushover config")
        if data.get("html") and data.get("monospace"):
            raise ValueError("html and monospace options are mutually exclusive")
        for key in ("retry", "expire", "ttl"):
            if data.get(key) is not None:
                _duration(data[key], key)


def _duration(value: Any, key: str) -> float:
    try:
        return parse_prom_duration(str(value))
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from None


class SNSConfig(KindConfig):
    KEYS = ("api_url", "sigv4", "topic_arn", "phone_number", "target_arn", "subject", "message", "attributes")

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        if not (data.get("target_arn") or data.get("topic_arn") or data.get("phone_number")):
            raise ValueError("must provide either a Target ARN, Topic ARN, or Phone Number for SNS config")
        sigv4 = data.get("sigv4") or {}
        if not isinstance(sigv4, dict):
            raise ValueError("sigv4 must be a mapping")
        for key in sigv4:
            if key not in ("region", "access_key", "secret_key", "profile", "role_arn"):
                raise ValueError(f"field {key} not found in sigv4")
        if bool(sigv4.get("access_key")) != bool(sigv4.get("secret_key")):
            raise ValueError("must provide a AWS SigV4 Access key and Secret Key if credentials are specified in "
                             "the SigV4 config")


class _WebhookKind(KindConfig):
    """A kind that posts to one webhook URL, given inline or read from a file (exactly one of the two)."""

    URLS = ("webhook_url",)

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        one_of(data, "webhook_url", "webhook_url_file")


class MSTeamsConfig(_WebhookKind):
    KEYS = ("webhook_url", "webhook_url_file", "title", "summary", "text")


class MSTeamsV2Config(_WebhookKind):
    """Alertmanager 0.28's `msteamsv2_configs`: a Teams Workflows (Power Automate) webhook, Adaptive Card."""

    KEYS = ("webhook_url", "webhook_url_file", "title", "text")


class DiscordConfig(_WebhookKind):
    KEYS = ("webhook_url", "webhook_url_file", "title", "message", "content", "username", "avatar_url")


class TelegramConfig(KindConfig):
    URLS = ("api_url",)
    KEYS = ("api_url", "bot_token", "bot_token_file", "chat_id", "message_thread_id", "message",
            "disable_notifications", "parse_mode")

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        if not (data.get("bot_token") or data.get("bot_token_file")):
            raise ValueError("missing bot_token or bot_token_file on telegram_config")
        at_most_one_of(data, "bot_token", "bot_token_file")
        if not data.get("chat_id"):
            raise ValueError("missing chat_id on telegram_config")
        for key in ("chat_id", "message_thread_id"):  # int64 in Alertmanager: a name or "@channel" is refused
            if key in data and (isinstance(data[key], bool) or not isinstance(data[key], int)):
                raise ValueError(f"{key} must be an integer (a numeric chat id, e.g. -1001234567890)")
        if data.get("parse_mode", "") not in ("", "Markdown", "MarkdownV2", "HTML"):
            raise ValueError("unknown parse_mode on telegram_config, must be Markdown, MarkdownV2, HTML or empty "
                             "string")


class WebexConfig(KindConfig):
    URLS = ("api_url",)
    KEYS = ("api_url", "message", "room_id")

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        if not data.get("room_id"):
            raise ValueError("missing room_id on webex_config")
        http = data.get("http_config") or {}
        if not isinstance(http, dict) or not http.get("authorization"):
            raise ValueError("missing webex_configs.http_config.authorization")


class WechatConfig(KindConfig):
    send_resolved: bool = False
    URLS = ("api_url",)
    KEYS = ("api_secret", "corp_id", "message", "api_url", "to_user", "to_party", "to_tag", "agent_id",
            "message_type")

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        if data.get("message_type", "text") not in ("text", "markdown"):
            raise ValueError(f"weChat message type {data['message_type']!r} does not exist")


KINDS: dict[str, type[KindConfig]] = {
    "opsgenie": OpsGenieConfig, "victorops": VictorOpsConfig, "pushover": PushoverConfig, "sns": SNSConfig,
    "msteams": MSTeamsConfig, "msteamsv2": MSTeamsV2Config, "discord": DiscordConfig, "telegram": TelegramConfig,
    "webex": WebexConfig, "wechat": WechatConfig,
}
