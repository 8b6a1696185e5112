"""Generic webhook: Alertmanager's webhook JSON, so existing receivers of Alertmanager work unchanged."""

from __future__ import annotations

import aiohttp

from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.receiver_configs import GlobalConfig, WebhookConfig
from watchkeeper.sinks.channels.base import auth_headers, post_json


class WebhookChannel:
    def __init__(self, integration: str, cfg: WebhookConfig, global_cfg: GlobalConfig,
                 session: aiohttp.ClientSession) -> None:
        self.integration, self.cfg, self.session = integration, cfg, session
        self.http = cfg.http_config or global_cfg.http_config

    async def send(self, n: Notification) -> None:
        await post_json(self.session, self.cfg.url, n.webhook_payload(self.cfg.max_alerts), auth_headers(self.http),
                        secret_url=True, http=self.http)
