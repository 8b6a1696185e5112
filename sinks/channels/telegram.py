"""Telegram Bot API `sendMessage`: to `chat_id` (and `message_thread_id`), with `parse_mode` (HTML by
default, so the default text escapes label values) and `disable_notification`; the text is capped at
Telegram's 4096 characters. The bot token is in the URL path: masked wherever the URL is shown."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.receiver_configs import GlobalConfig
from watchkeeper.core.notify.receiver_kinds import TelegramConfig
from watchkeeper.core.notify.templates import NotifyTemplates
from watchkeeper.sinks.channels.base import DeliveryError, auth_headers, http_request, read_secret, template_errors
from watchkeeper.sinks.channels.texts import KindTexts, truncate

API_URL = "https://api.telegram.org"
MESSAGE_LIMIT = 4096


def telegram_message(cfg: TelegramConfig, n: Notification, templates: NotifyTemplates | None = None) -> dict[str, Any]:
    """In the HTML parse mode the message template is rendered as html/template renders it (values
    escaped: a label value like `a<b` would break the HTML), as Alertmanager's TmplHTML does."""
    parse_mode = cfg.get("parse_mode", "HTML")
    message = KindTexts("telegram", cfg, n, templates)("message", html=parse_mode == "HTML")
    msg: dict[str, Any] = {"chat_id": cfg.get("chat_id"), "text": truncate(message, MESSAGE_LIMIT),
                           "disable_notification": bool(cfg.get("disable_notifications", False)),
                           "disable_web_page_preview": True}  # as Alertmanager: no preview of the source link
    if parse_mode:
        msg["parse_mode"] = parse_mode
    if cfg.get("message_thread_id"):
        msg["message_thread_id"] = cfg.get("message_thread_id")
    return msg


class TelegramChannel:
    def __init__(self, integration: str, cfg: TelegramConfig, global_cfg: GlobalConfig,
                 session: aiohttp.ClientSession, templates: NotifyTemplates | None = None) -> None:
        self.integration, self.cfg, self.session, self.templates = integration, cfg, session, templates
        self.http = cfg.http() or global_cfg.http_config
        self.api_url = str(cfg.get("api_url") or global_cfg.telegram_api_url or API_URL).rstrip("/")

    async def send(self, n: Notification) -> str:
        token = read_secret(self.cfg.get("bot_token", ""), self.cfg.get("bot_token_file", ""), "Telegram bot_token")
        url = f"{self.api_url}/bot{token}/sendMessage"
        with template_errors():
            msg = telegram_message(self.cfg, n, self.templates)
        try:
            _, answer = await http_request(self.session, "POST", url, orjson.dumps(msg),
                                           {**auth_headers(self.http), "Content-Type": "application/json"},
                                           secret_url=True, http=self.http)
        except DeliveryError as exc:
            raise _with_description(exc) from None
        try:
            result = orjson.loads(answer).get("result", {})
        except (orjson.JSONDecodeError, AttributeError):
            return ""
        return f"message {result.get('message_id', '')}" if isinstance(result, dict) else ""


def _with_description(exc: DeliveryError) -> DeliveryError:
    """Telegram's `description` ("Bad Request: chat not found") and its `retry_after` for a 429."""
    head, _, body = str(exc).partition(": ")
    try:
        got = orjson.loads(body)
    except orjson.JSONDecodeError:
        return exc
    if not isinstance(got, dict):
        return exc
    wait = (got.get("parameters") or {}).get("retry_after")
    return DeliveryError(f"{head}: {got.get('description', body)}", exc.retryable,
                         float(wait) if isinstance(wait, int | float) else exc.retry_after)
