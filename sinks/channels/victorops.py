"""VictorOps (Splunk On-Call) REST endpoint integration: one JSON event per flush to
`{api_url}{api_key}/{routing_key}`; `message_type` (CRITICAL unless configured) while firing and RECOVERY
when resolved, `entity_id` the group key's hash so recovery closes the incident the trigger opened."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from core.notify.notification import Notification
from core.notify.receiver_configs import GlobalConfig
from core.notify.receiver_kinds import VictorOpsConfig
from core.notify.text_template import render_template
from sinks.channels.base import DeliveryError, auth_headers, http_request, read_secret
from sinks.channels.texts import Defaults, annotated_alert_list, group_hash, subject, text, truncate

API_URL = "https://alert.victorops.com/integrations/generic/20131114/alert/"
STATE_MESSAGE_LIMIT = 20480
FIRING_TYPES = ("CRITICAL", "WARNING", "INFO")
DEFAULTS: Defaults = {
    "message_type": ("CRITICAL", lambda n: "CRITICAL"),
    "entity_display_name": ("victorops.default.entity_display_name", subject),
    "state_message": ("victorops.default.state_message", annotated_alert_list),
    "monitoring_tool": ("victorops.default.monitoring_tool", lambda n: "Watchkeeper"),
}


def victorops_event(cfg: VictorOpsConfig, n: Notification) -> dict[str, Any]:
    message_type = text(cfg, DEFAULTS, "message_type", n).upper()
    if n.status == "resolved":
        message_type = "RECOVERY"
    elif message_type not in FIRING_TYPES:  # Alertmanager's rule: an unknown type still pages
        message_type = "CRITICAL"
    data = n.template_data()
    event = {str(k): render_template(str(v), data) for k, v in cfg.get("custom_fields", {}).items()}
    event.update({
        "message_type": message_type,
        "entity_id": group_hash(n),
        "entity_display_name": text(cfg, DEFAULTS, "entity_display_name", n),
        "state_message": truncate(text(cfg, DEFAULTS, "state_message", n), STATE_MESSAGE_LIMIT),
        "monitoring_tool": text(cfg, DEFAULTS, "monitoring_tool", n),
    })
    return event


class VictorOpsChannel:
    def __init__(self, integration: str, cfg: VictorOpsConfig, global_cfg: GlobalConfig,
                 session: aiohttp.ClientSession) -> None:
        self.integration, self.cfg, self.global_cfg, self.session = integration, cfg, global_cfg, session
        self.http = cfg.http() or global_cfg.http_config
        url = cfg.get("api_url") or global_cfg.victorops_api_url or API_URL
        self.api_url = url if url.endswith("/") else url + "/"

    def url(self, n: Notification) -> str:
        c, g = self.cfg, self.global_cfg
        if c.get("api_key") or c.get("api_key_file"):
            key = read_secret(c.get("api_key", ""), c.get("api_key_file", ""), "VictorOps api_key")
        else:
            key = read_secret(g.victorops_api_key, g.victorops_api_key_file, "VictorOps api_key")
        routing = render_template(str(c.get("routing_key")), n.template_data())
        return f"{self.api_url}{quote(key, safe='')}/{quote(routing, safe='')}"

    async def send(self, n: Notification) -> str:
        _, answer = await http_request(
            self.session, "POST", self.url(n), orjson.dumps(victorops_event(self.cfg, n)),
            {**auth_headers(self.http), "Content-Type": "application/json"}, secret_url=True, http=self.http)
        try:
            got = orjson.loads(answer)
        except orjson.JSONDecodeError:
            return ""
        if isinstance(got, dict) and got.get("result") == "failure":
            raise DeliveryError(f"VictorOps refused the event: {str(got.get('message', ''))[:200]}", False)
        return f"entity {got.get('entity_id', '')}" if isinstance(got, dict) else ""
