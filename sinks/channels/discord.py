"""Discord webhook: one embed (title and description from the templates, red while firing, green when
resolved) plus the optional plain `content`, `username` and `avatar_url`, each capped at Discord's limits."""

from __future__ import annotations

from typing import Any

import aiohttp

from core.notify.notification import Notification
from core.notify.receiver_configs import GlobalConfig
from core.notify.receiver_kinds import DiscordConfig
from sinks.channels.base import auth_headers, post_json
from sinks.channels.msteams import webhook_url
from sinks.channels.texts import Defaults, alert_list, subject, text, truncate

TITLE_LIMIT, DESCRIPTION_LIMIT, CONTENT_LIMIT = 256, 4096, 2000
FIRING_COLOR, RESOLVED_COLOR = 0x992D22, 0x2ECC71
DEFAULTS: Defaults = {
    "title": ("discord.default.title", subject),
    "message": ("discord.default.message", alert_list),
}


def discord_message(cfg: DiscordConfig, n: Notification) -> dict[str, Any]:
    msg: dict[str, Any] = {"embeds": [{
        "title": truncate(text(cfg, DEFAULTS, "title", n), TITLE_LIMIT),
        "description": truncate(text(cfg, DEFAULTS, "message", n), DESCRIPTION_LIMIT),
        "color": FIRING_COLOR if n.status == "firing" else RESOLVED_COLOR,
    }]}
    if content := text(cfg, DEFAULTS, "content", n):
        msg["content"] = truncate(content, CONTENT_LIMIT)
    for key in ("username", "avatar_url"):
        if value := text(cfg, DEFAULTS, key, n):
            msg[key] = value
    return msg


class DiscordChannel:
    def __init__(self, integration: str, cfg: DiscordConfig, global_cfg: GlobalConfig,
                 session: aiohttp.ClientSession) -> None:
        self.integration, self.cfg, self.session = integration, cfg, session
        self.http = cfg.http() or global_cfg.http_config

    async def send(self, n: Notification) -> None:
        await post_json(self.session, webhook_url(self.cfg, "discord"), discord_message(self.cfg, n),
                        auth_headers(self.http), secret_url=True, http=self.http)
