"""Microsoft Teams: the connector MessageCard Alertmanager's `msteams_configs` sends to an incoming
webhook (title, summary, text, a red theme while firing and green when resolved), and the Adaptive Card
its `msteamsv2_configs` sends to a Workflows webhook. The webhook URL carries its credential, so it is
masked whole in every error and record."""

from __future__ import annotations

from typing import Any

import aiohttp

from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.receiver_configs import GlobalConfig
from watchkeeper.core.notify.receiver_kinds import MSTeamsConfig, MSTeamsV2Config
from watchkeeper.core.notify.templates import NotifyTemplates
from watchkeeper.plumbing.log_filters import KNOWN_SECRETS
from watchkeeper.sinks.channels.base import DeliveryError, auth_headers, post_json, read_secret, template_errors
from watchkeeper.sinks.channels.texts import KindTexts

FIRING_COLOR, RESOLVED_COLOR = "8C1A1A", "2DC72D"


def message_card(cfg: MSTeamsConfig, n: Notification, templates: NotifyTemplates | None = None) -> dict[str, Any]:
    text = KindTexts("msteams", cfg, n, templates)
    return {
        "@context": "http://schema.org/extensions",
        "type": "MessageCard",
        "title": text("title"),
        "summary": text("summary"),
        "text": text("text"),
        "themeColor": FIRING_COLOR if n.status == "firing" else RESOLVED_COLOR,
    }


def adaptive_card(cfg: MSTeamsV2Config, n: Notification, templates: NotifyTemplates | None = None) -> dict[str, Any]:
    """A message with one Adaptive Card (schema 1.2, full width): the title as a heading coloured by
    status, the text wrapped below it."""
    text = KindTexts("msteamsv2", cfg, n, templates)
    return {"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive",
        "content": {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard", "version": "1.2",
            "body": [
                {"type": "TextBlock", "text": text("title"), "weight": "Bolder", "size": "Medium",
                 "wrap": True, "style": "heading", "color": "Attention" if n.status == "firing" else "Good"},
                {"type": "TextBlock", "text": text("text"), "wrap": True},
            ],
            "msteams": {"width": "full"},
        },
    }]}


def webhook_url(cfg: MSTeamsConfig | Any, what: str) -> str:
    """The inline `webhook_url`, or the one read from `webhook_url_file` (registered as a secret URL)."""
    url = str(cfg.get("webhook_url", ""))
    if url:
        return url
    url = read_secret("", str(cfg.get("webhook_url_file", "")), f"{what} webhook_url")
    if not url:
        raise DeliveryError(f"{what}: webhook_url_file is empty", False)
    KNOWN_SECRETS.add_url(url, hide_path=True)
    return url


class MSTeamsChannel:
    def __init__(self, integration: str, cfg: MSTeamsConfig, global_cfg: GlobalConfig,
                 session: aiohttp.ClientSession, templates: NotifyTemplates | None = None) -> None:
        self.integration, self.cfg, self.session, self.templates = integration, cfg, session, templates
        self.http = cfg.http() or global_cfg.http_config

    async def send(self, n: Notification) -> None:
        with template_errors():
            card = message_card(self.cfg, n, self.templates)
        await post_json(self.session, webhook_url(self.cfg, "msteams"), card,
                        auth_headers(self.http), secret_url=True, http=self.http)


class MSTeamsV2Channel:
    def __init__(self, integration: str, cfg: MSTeamsV2Config, global_cfg: GlobalConfig,
                 session: aiohttp.ClientSession, templates: NotifyTemplates | None = None) -> None:
        self.integration, self.cfg, self.session, self.templates = integration, cfg, session, templates
        self.http = cfg.http() or global_cfg.http_config

    async def send(self, n: Notification) -> None:
        with template_errors():
            card = adaptive_card(self.cfg, n, self.templates)
        await post_json(self.session, webhook_url(self.cfg, "msteamsv2"), card,
                        auth_headers(self.http), secret_url=True, http=self.http)
