"""PagerDuty Events API v2: trigger while anything fires, resolve when all is resolved; the dedup key is
the group key's hash, as Alertmanager's."""

from __future__ import annotations

import hashlib
from typing import Any

import aiohttp

from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.receiver_configs import GlobalConfig, PagerdutyConfig
from watchkeeper.core.notify.templates import NotifyTemplates, default_templates, notification_data
from watchkeeper.sinks.channels.base import auth_headers, post_json, template_errors

SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info", "warning": "warning",
            "error": "error", "info": "info"}


# Alertmanager's default PagerDuty details; a config's `details` add to them and may replace one.
DEFAULT_DETAILS = {
    "firing": '{{ template "pagerduty.default.instances" .Alerts.Firing }}',
    "resolved": '{{ template "pagerduty.default.instances" .Alerts.Resolved }}',
    "num_firing": "{{ .Alerts.Firing | len }}",
    "num_resolved": "{{ .Alerts.Resolved | len }}",
}


def pagerduty_event(cfg: PagerdutyConfig, n: Notification,
                    templates: NotifyTemplates | None = None) -> dict[str, Any]:
    """Events API v2; description, client, client URL, severity, source and details values are templates
    (defaults: Alertmanager's `pagerduty.default.*` names)."""
    tmpl = templates or default_templates()
    data = notification_data(n)

    def r(text: str) -> str:
        return tmpl.render(text, data)

    sev = r(cfg.severity) or SEVERITY.get(n.common_labels.get("severity", ""), "error")
    client = r(cfg.client)
    return {
        "routing_key": cfg.routing_key,
        "dedup_key": hashlib.sha256(n.group_key.encode()).hexdigest(),
        "event_action": "trigger" if n.status == "firing" else "resolve",
        "client": client,
        "client_url": r(cfg.client_url),
        "payload": {
            "summary": r(cfg.description)[:1024],
            "source": r(cfg.source) or client,
            "severity": sev,
            "custom_details": {k: r(v) for k, v in {**DEFAULT_DETAILS, **cfg.details}.items()},
        },
    }


class PagerdutyChannel:
    def __init__(self, integration: str, cfg: PagerdutyConfig, global_cfg: GlobalConfig,
                 session: aiohttp.ClientSession, templates: NotifyTemplates | None = None) -> None:
        self.integration, self.cfg, self.session, self.templates = integration, cfg, session, templates
        self.url = cfg.url or global_cfg.pagerduty_url
        self.http = cfg.http_config or global_cfg.http_config

    async def send(self, n: Notification) -> None:
        with template_errors():
            event = pagerduty_event(self.cfg, n, self.templates)
        await post_json(self.session, self.url, event, auth_headers(self.http), http=self.http)
