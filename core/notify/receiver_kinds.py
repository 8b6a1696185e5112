"""Alertmanager receiver kinds that Watchkeeper loads and validates but does not deliver to (yet):
opsgenie, victorops, pushover, sns, msteams, discord, telegram, webex, wechat. A config from the wild
that uses them loads unchanged; every key is checked against Alertmanager's (config/notifiers.go,
v0.25 plus the fields added up to v0.29), and its required-field rules are applied, with its messages,
so a typo is refused at load, not ignored. The notification sink does not plan deliveries to these."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator

_COMMON = ("send_resolved", "http_config")


class LoadOnlyConfig(BaseModel):
    """Keys are Alertmanager's for the kind; values are kept as given (they are not used)."""

    model_config = ConfigDict(extra="allow")
    KEYS: ClassVar[tuple[str, ...]] = ()

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
        cls.check(data)
        return data

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        """The kind's own rules (Alertmanager's UnmarshalYAML)."""

    def get(self, key: str, default: Any = None) -> Any:
        return (self.model_extra or {}).get(key, default)


def _one_of(data: dict[str, Any], a: str, b: str) -> None:
    if data.get(a) and data.get(b):
        raise ValueError(f"at most one of {a} & {b} must be configured")


class OpsGenieConfig(LoadOnlyConfig):
    KEYS = ("api_key", "api_key_file", "api_url", "message", "description", "source", "details", "entity",
            "responders", "actions", "tags", "note", "priority", "update_alerts")

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        _one_of(data, "api_key", "api_key_file")
        for r in data.get("responders") or []:
            if not isinstance(r, dict) or not (r.get("id") or r.get("name") or r.get("username")):
                raise ValueError("opsGenieConfig responder must have at least an id, a name or a username "
                                 "defined")
            kind = str(r.get("type", ""))
            if kind not in ("team", "teams", "user", "escalation", "schedule") and "{{" not in kind:
                raise ValueError(f"opsGenieConfig responder {r} has invalid type")


class VictorOpsConfig(LoadOnlyConfig):
    KEYS = ("api_key", "api_key_file", "api_url", "routing_key", "message_type", "state_message",
            "entity_display_name", "monitoring_tool", "custom_fields")
    _RESERVED = ("routing_key", "message_type", "state_message", "entity_display_name", "monitoring_tool",
                 "entity_id", "entity_state")

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        if not data.get("routing_key"):
            raise ValueError("missing Routing key in VictorOps config")
        _one_of(data, "api_key", "api_key_file")
        for k in data.get("custom_fields") or {}:
            if k in cls._RESERVED:
                raise ValueError(f"victorOps config contains custom field {k} which cannot be used as it "
                                 "conflicts with the fixed/static fields")


class PushoverConfig(LoadOnlyConfig):
    KEYS = ("user_key", "user_key_file", "token", "token_file", "title", "message", "url", "url_title",
            "device", "sound", "priority", "retry", "expire", "ttl", "html", "monospace")

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        if not (data.get("user_key") or data.get("user_key_file")):
            raise ValueError("missing user key in Pushover config")
        if not (data.get("token") or data.get("token_file")):
            raise ValueError("missing token in Pushover config")


class SNSConfig(LoadOnlyConfig):
    KEYS = ("api_url", "sigv4", "topic_arn", "phone_number", "target_arn", "subject", "message", "attributes")

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        if not (data.get("target_arn") or data.get("topic_arn") or data.get("phone_number")):
            raise ValueError("must provide either a Target ARN, Topic ARN, or Phone Number for SNS config")


class MSTeamsConfig(LoadOnlyConfig):
    KEYS = ("webhook_url", "webhook_url_file", "title", "summary", "text")

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        if not (data.get("webhook_url") or data.get("webhook_url_file")):
            raise ValueError("one of webhook_url or webhook_url_file must be configured")
        _one_of(data, "webhook_url", "webhook_url_file")


class DiscordConfig(LoadOnlyConfig):
    KEYS = ("webhook_url", "webhook_url_file", "title", "message", "content", "username", "avatar_url")

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        if not (data.get("webhook_url") or data.get("webhook_url_file")):
            raise ValueError("one of webhook_url or webhook_url_file must be configured")
        _one_of(data, "webhook_url", "webhook_url_file")


class TelegramConfig(LoadOnlyConfig):
    KEYS = ("api_url", "bot_token", "bot_token_file", "chat_id", "message_thread_id", "message",
            "disable_notifications", "parse_mode")

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        if not (data.get("bot_token") or data.get("bot_token_file")):
            raise ValueError("missing bot_token or bot_token_file on telegram_config")
        _one_of(data, "bot_token", "bot_token_file")
        if not data.get("chat_id"):
            raise ValueError("missing chat_id on telegram_config")
        if data.get("parse_mode", "") not in ("", "Markdown", "MarkdownV2", "HTML"):
            raise ValueError("unknown parse_mode on telegram_config, must be Markdown, MarkdownV2, HTML or empty "
                             "string")


class WebexConfig(LoadOnlyConfig):
    KEYS = ("api_url", "message", "room_id")

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        if not data.get("room_id"):
            raise ValueError("missing room_id on webex_config")
        http = data.get("http_config") or {}
        if not isinstance(http, dict) or not http.get("authorization"):
            raise ValueError("missing webex_configs.http_config.authorization")


class WechatConfig(LoadOnlyConfig):
    KEYS = ("api_secret", "corp_id", "message", "api_url", "to_user", "to_party", "to_tag", "agent_id",
            "message_type")

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        if data.get("message_type", "text") not in ("text", "markdown"):
            raise ValueError(f"weChat message type {data['message_type']!r} does not exist")


LOAD_ONLY: dict[str, type[LoadOnlyConfig]] = {
    "opsgenie": OpsGenieConfig, "victorops": VictorOpsConfig, "pushover": PushoverConfig, "sns": SNSConfig,
    "msteams": MSTeamsConfig, "discord": DiscordConfig, "telegram": TelegramConfig, "webex": WebexConfig,
    "wechat": WechatConfig,
}
