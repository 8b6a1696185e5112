"""Discord webhook: one embed (title and description from the templates, red while firing, green when
resolved) plus the optional plain `content`, `username` and `avatar_url`, each capped at Discord's limits."""

from __future__ import annotations

from typing import Any

import aiohttp

from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.receiver_configs import GlobalConfig
from watchkeeper.core.notify.receiver_kinds import DiscordConfig
from watchkeeper.core.notify.templates import NotifyTemplates
from watchkeeper.sinks.channels.base import auth_headers, post_json, template_errors
from watchkeeper.sinks.channels.msteams import webhook_url
from watchkeeper.sinks.channels.texts import KindTexts, truncate

TITLE_LIMIT, DESCRIPTION_LIMIT, CONTENT_LIMIT = 256, 4096, 2000
FIRING_COLOR, RESOLVED_COLOR = 0x992D22, 0x2ECC71


def discord_message(cfg: DiscordConfig, n: Notification, templates: NotifyTemplates | None = None) -> dict[str, Any]:
    text = KindTexts("discord", cfg, n, templates)
    msg: dict[str, Any] = {"embeds": [{
        "title": truncate(text("title"), TITLE_LIMIT),
        "description": truncate(text("message"), DESCRIPTION_LIMIT),
        "color": FIRING_COLOR if n.status == "firing" else RESOLVED_COLOR,
    }]}
    if content := text("content"):
        msg["content"] = truncate(content, CONTENT_LIMIT)
    for key in ("username", "avatar_url"):
        if value := text(key):
            msg[key] = value
    return msg


class DiscordChannel:
    def __init__(self, integration: str, cfg: DiscordConfig, global_cfg: GlobalConfig,
                 session: aiohttp.ClientSession, templates: NotifyTemplates | None = None) -> None:
        self.integration, self.cfg, self.session, self.templates = integration, cfg, session, templates
        self.http = cfg.http() or global_cfg.http_config

    async def send(self, n: Notification) -> None:
        with template_errors():
            msg = discord_message(self.cfg, n, self.templates)
        await post_json(self.session, webhook_url(self.cfg, "discord"), msg,
                        auth_headers(self.http), secret_url=True, http=self.http)
