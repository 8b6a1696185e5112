"""Push to an existing Alertmanager's v2 API: Watchkeeper as one more alert source for it. Resolved
alerts carry their end time, which is how Alertmanager learns they ended."""

from __future__ import annotations

import aiohttp

from watchkeeper.core.notify.notification import Notification, alert_json
from watchkeeper.core.notify.receiver_configs import AlertmanagerPushConfig
from watchkeeper.sinks.channels.base import post_json


class AlertmanagerChannel:
    def __init__(self, integration: str, cfg: AlertmanagerPushConfig, session: aiohttp.ClientSession) -> None:
        self.integration, self.cfg, self.session = integration, cfg, session
        self.url = cfg.url.rstrip("/") + "/api/v2/alerts"

    async def send(self, n: Notification) -> None:
        body = []
        for a in n.alerts:
            j = alert_json(a)
            item = {"labels": j["labels"], "annotations": j["annotations"], "startsAt": j["startsAt"],
                    "generatorURL": j["generatorURL"] or n.external_url or "http://watchkeeper"}
            if a.state == "resolved":
                item["endsAt"] = j["endsAt"]
            body.append(item)
        await post_json(self.session, self.url, body)
