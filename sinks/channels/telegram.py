"""Telegram Bot API `sendMessage`: to `chat_id` (and `message_thread_id`), with `parse_mode` (HTML by
default, so the default text escapes label values) and `disable_notification`; the text is capped at
Telegram's 4096 characters. The bot token is in the URL path: masked wherever the URL is shown."""

from __future__ import annotations

import html
from typing import Any

import aiohttp
import orjson

from core.notify.notification import Notification
from core.notify.receiver_configs import GlobalConfig
from core.notify.receiver_kinds import TelegramConfig
from sinks.channels.base import DeliveryError, auth_headers, http_request, read_secret
from sinks.channels.texts import Defaults, alert_list, text, truncate

API_URL = "https://api.telegram.org"
MESSAGE_LIMIT = 4096
DEFAULTS: Defaults = {"message": ("telegram.default.message", alert_list)}


def telegram_message(cfg: TelegramConfig, n: Notification) -> dict[str, Any]:
    parse_mode = cfg.get("parse_mode", "HTML")
    message = text(cfg, DEFAULTS, "message", n)
    if cfg.get("message") is None and parse_mode == "HTML":
        message = html.escape(message, quote=False)  # a label value like `a<b` would break the HTML
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
                 session: aiohttp.ClientSession) -> None:
        self.integration, self.cfg, self.session = integration, cfg, session
        self.http = cfg.http() or global_cfg.http_config
        self.api_url = str(cfg.get("api_url") or global_cfg.telegram_api_url or API_URL).rstrip("/")

    async def send(self, n: Notification) -> str:
        token = read_secret(self.cfg.get("bot_token", ""), self.cfg.get("bot_token_file", ""), "Telegram bot_token")
        url = f"{self.api_url}/bot{token}/sendMessage"
        try:
            _, answer = await http_request(self.session, "POST", url, orjson.dumps(telegram_message(self.cfg, n)),
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
