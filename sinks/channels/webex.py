"""Webex Messages API: a Markdown message to `room_id`, authorized by `http_config.authorization` (the
bot's bearer token, which Alertmanager requires); the text is capped at Webex's 7439 bytes."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.receiver_configs import GlobalConfig
from watchkeeper.core.notify.receiver_kinds import WebexConfig
from watchkeeper.core.notify.templates import NotifyTemplates
from watchkeeper.sinks.channels.base import auth_headers, post_json, template_errors
from watchkeeper.sinks.channels.texts import KindTexts, truncate_bytes

API_URL = "https://webexapis.com/v1/messages"
MESSAGE_BYTES = 7439


def webex_message(cfg: WebexConfig, n: Notification, templates: NotifyTemplates | None = None) -> dict[str, Any]:
    message = KindTexts("webex", cfg, n, templates)("message")
    return {"roomId": cfg.get("room_id"), "markdown": truncate_bytes(message, MESSAGE_BYTES)}


class WebexChannel:
    def __init__(self, integration: str, cfg: WebexConfig, global_cfg: GlobalConfig,
                 session: aiohttp.ClientSession, templates: NotifyTemplates | None = None) -> None:
        self.integration, self.cfg, self.session, self.templates = integration, cfg, session, templates
        self.http = cfg.http()
        self.url = str(cfg.get("api_url") or global_cfg.webex_api_url or API_URL)

    async def send(self, n: Notification) -> str:
        with template_errors():
            msg = webex_message(self.cfg, n, self.templates)
        answer = await post_json(self.session, self.url, msg, auth_headers(self.http),
                                 http=self.http)
        try:
            return f"message {orjson.loads(answer).get('id', '')}"
        except (orjson.JSONDecodeError, AttributeError):
            return ""
