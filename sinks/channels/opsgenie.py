"""Opsgenie Alert API v2: create an alert (its alias is the group key's hash, so repeats update the same
alert) while anything fires, close it by alias when all is resolved; `GenieKey` authorization. With
`update_alerts` the message and description of the open alert are updated too, as Alertmanager does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.receiver_configs import GlobalConfig
from watchkeeper.core.notify.receiver_kinds import OpsGenieConfig
from watchkeeper.core.notify.templates import NotifyTemplates
from watchkeeper.sinks.channels.base import auth_headers, http_request, read_secret, template_errors
from watchkeeper.sinks.channels.texts import KindTexts, group_hash, truncate

API_URL = "https://api.opsgenie.com/"
MESSAGE_LIMIT = 130  # Opsgenie's cap on an alert's message
DESCRIPTION_LIMIT = 15000


@dataclass
class OpsgenieRequest:
    method: str
    path: str  # under api_url
    body: dict[str, Any]


def _csv(value: str) -> list[str]:
    return [x.strip() for x in value.split(",") if x.strip()]


def responders(cfg: OpsGenieConfig, text: KindTexts) -> list[dict[str, str]]:
    """The configured responders rendered; a `teams` responder is a comma-separated list of team names."""
    out: list[dict[str, str]] = []
    for r in cfg.get("responders", []):
        got = {k: text.render(r[k]) for k in ("id", "name", "username", "type") if r.get(k)}
        kind = got.get("type", "").lower()
        if kind == "teams":
            out += [{"type": "team", "name": name} for name in _csv(got.get("name", ""))]
            continue
        out.append({**got, "type": kind})
    return out


def opsgenie_requests(cfg: OpsGenieConfig, n: Notification,
                      templates: NotifyTemplates | None = None) -> list[OpsgenieRequest]:
    alias = group_hash(n)
    text = KindTexts("opsgenie", cfg, n, templates)
    source = text("source")
    if n.status == "resolved":
        return [OpsgenieRequest("POST", f"v2/alerts/{alias}/close?identifierType=alias", {"source": source})]
    message = truncate(text("message"), MESSAGE_LIMIT)
    description = truncate(text("description"), DESCRIPTION_LIMIT)
    body: dict[str, Any] = {
        "message": message, "alias": alias, "description": description, "source": source,
        # Alertmanager sends the common labels as details, under the configured ones.
        "details": {**n.common_labels, **{str(k): text.render(v) for k, v in cfg.get("details", {}).items()}},
        "responders": responders(cfg, text),
        "tags": _csv(text("tags")),
        "actions": _csv(text("actions")),
    }
    for key in ("note", "priority", "entity"):
        if value := text(key):
            body[key] = value
    out = [OpsgenieRequest("POST", "v2/alerts", body)]
    if cfg.get("update_alerts", False):
        out += [OpsgenieRequest("PUT", f"v2/alerts/{alias}/message?identifierType=alias", {"message": message}),
                OpsgenieRequest("PUT", f"v2/alerts/{alias}/description?identifierType=alias",
                                {"description": description})]
    return out


class OpsgenieChannel:
    def __init__(self, integration: str, cfg: OpsGenieConfig, global_cfg: GlobalConfig,
                 session: aiohttp.ClientSession, templates: NotifyTemplates | None = None) -> None:
        self.integration, self.cfg, self.global_cfg, self.session = integration, cfg, global_cfg, session
        self.templates = templates
        self.http = cfg.http() or global_cfg.http_config
        url = cfg.get("api_url") or global_cfg.opsgenie_api_url or API_URL
        self.api_url = url if url.endswith("/") else url + "/"

    def _key(self) -> str:
        c, g = self.cfg, self.global_cfg
        if c.get("api_key") or c.get("api_key_file"):
            return read_secret(c.get("api_key", ""), c.get("api_key_file", ""), "Opsgenie api_key")
        return read_secret(g.opsgenie_api_key, g.opsgenie_api_key_file, "Opsgenie api_key")

    async def send(self, n: Notification) -> str:
        headers = {**auth_headers(self.http), "Authorization": f"GenieKey {self._key()}",
                   "Content-Type": "application/json"}
        with template_errors():
            requests = opsgenie_requests(self.cfg, n, self.templates)
        ids = []
        for req in requests:
            _, answer = await http_request(self.session, req.method, self.api_url + req.path,
                                           orjson.dumps(req.body), headers, http=self.http)
            try:
                ids.append(str(orjson.loads(answer).get("requestId", "")))
            except (orjson.JSONDecodeError, AttributeError):
                ids.append("")
        return "opsgenie request " + ", ".join(i for i in ids if i) if any(ids) else ""
