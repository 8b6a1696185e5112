"""VictorOps (Splunk On-Call) REST endpoint integration: one JSON event per flush to
`{api_url}{api_key}/{routing_key}`; `message_type` (CRITICAL unless configured) while firing and RECOVERY
when resolved, `entity_id` the group key's hash so recovery closes the incident the trigger opened."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.receiver_configs import GlobalConfig
from watchkeeper.core.notify.receiver_kinds import VictorOpsConfig
from watchkeeper.core.notify.templates import NotifyTemplates
from watchkeeper.sinks.channels.base import DeliveryError, auth_headers, http_request, read_secret, template_errors
from watchkeeper.sinks.channels.texts import KindTexts, group_hash, truncate

API_URL = "https://alert.victorops.com/integrations/generic/20131114/alert/"
STATE_MESSAGE_LIMIT = 20480
FIRING_TYPES = ("CRITICAL", "WARNING", "INFO")


def victorops_event(cfg: VictorOpsConfig, n: Notification, templates: NotifyTemplates | None = None) -> dict[str, Any]:
    text = KindTexts("victorops", cfg, n, templates)
    message_type = text("message_type").upper()
    if n.status == "resolved":
        message_type = "RECOVERY"
    elif message_type not in FIRING_TYPES:  # Alertmanager's rule: an unknown type still pages
        message_type = "CRITICAL"
    event = {str(k): text.render(v) for k, v in cfg.get("custom_fields", {}).items()}
    event.update({
        "message_type": message_type,
        "entity_id": group_hash(n),
        "entity_display_name": text("entity_display_name"),
        "state_message": truncate(text("state_message"), STATE_MESSAGE_LIMIT),
        "monitoring_tool": text("monitoring_tool"),
    })
    return event


class VictorOpsChannel:
    def __init__(self, integration: str, cfg: VictorOpsConfig, global_cfg: GlobalConfig,
                 session: aiohttp.ClientSession, templates: NotifyTemplates | None = None) -> None:
        self.integration, self.cfg, self.global_cfg, self.session = integration, cfg, global_cfg, session
        self.templates = templates
        self.http = cfg.http() or global_cfg.http_config
        url = cfg.get("api_url") or global_cfg.victorops_api_url or API_URL
        self.api_url = url if url.endswith("/") else url + "/"

    def url(self, n: Notification) -> str:
        c, g = self.cfg, self.global_cfg
        if c.get("api_key") or c.get("api_key_file"):
            key = read_secret(c.get("api_key", ""), c.get("api_key_file", ""), "VictorOps api_key")
        else:
            key = read_secret(g.victorops_api_key, g.victorops_api_key_file, "VictorOps api_key")
        routing = KindTexts("victorops", c, n, self.templates).render(c.get("routing_key"))
        return f"{self.api_url}{quote(key, safe='')}/{quote(routing, safe='')}"

    async def send(self, n: Notification) -> str:
        with template_errors():
            url, event = self.url(n), victorops_event(self.cfg, n, self.templates)
        _, answer = await http_request(
            self.session, "POST", url, orjson.dumps(event),
            {**auth_headers(self.http), "Content-Type": "application/json"}, secret_url=True, http=self.http)
        try:
            got = orjson.loads(answer)
        except orjson.JSONDecodeError:
            return ""
        if isinstance(got, dict) and got.get("result") == "failure":
            raise DeliveryError(f"VictorOps refused the event: {str(got.get('message', ''))[:200]}", False)
        return f"entity {got.get('entity_id', '')}" if isinstance(got, dict) else ""
