"""Microsoft Teams incoming webhook: the MessageCard Alertmanager's `msteams_configs` sends (title,
summary, text, a red theme while firing and green when resolved). The webhook URL carries its credential,
so it is masked whole in every error and record."""

from __future__ import annotations

from typing import Any

import aiohttp

from core.notify.notification import Notification
from core.notify.receiver_configs import GlobalConfig
from core.notify.receiver_kinds import MSTeamsConfig
from sinks.channels.base import DeliveryError, auth_headers, post_json, read_secret
from sinks.channels.texts import Defaults, alert_list, subject, text
from watchkeeper.log_filters import KNOWN_SECRETS

FIRING_COLOR, RESOLVED_COLOR = "8C1A1A", "2DC72D"
DEFAULTS: Defaults = {
    "title": ("msteams.default.title", subject),
    "summary": ("msteams.default.summary", subject),
    "text": ("msteams.default.text", alert_list),
}


def message_card(cfg: MSTeamsConfig, n: Notification) -> dict[str, Any]:
    return {
        "@context": "http://schema.org/extensions",
        "type": "MessageCard",
        "title": text(cfg, DEFAULTS, "title", n),
        "summary": text(cfg, DEFAULTS, "summary", n),
        "text": text(cfg, DEFAULTS, "text", n),
        "themeColor": FIRING_COLOR if n.status == "firing" else RESOLVED_COLOR,
    }


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
                 session: aiohttp.ClientSession) -> None:
        self.integration, self.cfg, self.session = integration, cfg, session
        self.http = cfg.http() or global_cfg.http_config

    async def send(self, n: Notification) -> None:
        await post_json(self.session, webhook_url(self.cfg, "msteams"), message_card(self.cfg, n),
                        auth_headers(self.http), secret_url=True, http=self.http)
