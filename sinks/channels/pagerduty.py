"""PagerDuty Events API v2: trigger while anything fires, resolve when all is resolved; the dedup key is
the group key's hash, as Alertmanager's."""

from __future__ import annotations

import hashlib
from typing import Any

import aiohttp

from core.notify.notification import Notification
from core.notify.receiver_configs import GlobalConfig, PagerdutyConfig
from core.notify.text_template import render_template
from sinks.channels.base import auth_headers, post_json
from sinks.channels.slack import default_title

SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info", "warning": "warning",
            "error": "error", "info": "info"}


def pagerduty_event(cfg: PagerdutyConfig, n: Notification) -> dict[str, Any]:
    sev = cfg.severity or SEVERITY.get(n.common_labels.get("severity", ""), "error")
    summary = render_template(cfg.description, n.template_data()) if cfg.description else default_title(n)
    return {
        "routing_key": cfg.routing_key,
        "dedup_key": hashlib.sha256(n.group_key.encode()).hexdigest(),
        "event_action": "trigger" if n.status == "firing" else "resolve",
        "client": cfg.client,
        "client_url": cfg.client_url or n.external_url,
        "payload": {
            "summary": summary[:1024],
            "source": cfg.client,
            "severity": sev,
            "custom_details": {
                "firing": [dict(a.labels) for a in n.firing()],
                "resolved": [dict(a.labels) for a in n.resolved()],
                "num_firing": len(n.firing()), "num_resolved": len(n.resolved()), **cfg.details,
            },
        },
    }


class PagerdutyChannel:
    def __init__(self, integration: str, cfg: PagerdutyConfig, global_cfg: GlobalConfig,
                 session: aiohttp.ClientSession) -> None:
        self.integration, self.cfg, self.session = integration, cfg, session
        self.url = cfg.url or global_cfg.pagerduty_url
        self.http = cfg.http_config or global_cfg.http_config

    async def send(self, n: Notification) -> None:
        await post_json(self.session, self.url, pagerduty_event(self.cfg, n), auth_headers(self.http),
                        http=self.http)
