"""Pushover Message API: a form POST to messages.json with the application `token` and the `user` key.
Alertmanager's defaults: priority 2 (emergency: repeated every `retry` until acknowledged or `expire`)
while firing, 0 when resolved; title, message and URL capped at Pushover's limits."""

from __future__ import annotations

from urllib.parse import urlencode

import aiohttp
import orjson

from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.receiver_configs import GlobalConfig
from watchkeeper.core.notify.receiver_kinds import PushoverConfig
from watchkeeper.core.notify.templates import NotifyTemplates
from watchkeeper.core.slo.go_format import parse_prom_duration
from watchkeeper.sinks.channels.base import DeliveryError, auth_headers, http_request, read_secret, template_errors
from watchkeeper.sinks.channels.texts import KindTexts, truncate

API_URL = "https://api.pushover.net/1/messages.json"
TITLE_LIMIT, MESSAGE_LIMIT, URL_LIMIT = 250, 1024, 512
RETRY, EXPIRE = 60.0, 3600.0  # Alertmanager's defaults: 1m, 1h


def _seconds(cfg: PushoverConfig, key: str, default: float) -> int:
    value = cfg.get(key)
    return int(default if value is None else parse_prom_duration(str(value)))


def pushover_form(cfg: PushoverConfig, token: str, user: str, n: Notification,
                  templates: NotifyTemplates | None = None) -> dict[str, str]:
    """With `html: true` the message is escaped as html/template does, as Alertmanager renders it then."""
    text = KindTexts("pushover", cfg, n, templates)
    message = truncate(text("message", html=bool(cfg.get("html"))), MESSAGE_LIMIT)
    form = {"token": token, "user": user, "title": truncate(text("title"), TITLE_LIMIT),
            "message": message or "(no details)",  # Pushover refuses an empty message
            "url": truncate(text("url"), URL_LIMIT)}
    for key in ("url_title", "device", "sound"):
        if value := text(key):
            form[key] = value
    priority = text("priority").strip() or "0"
    form["priority"] = priority
    if priority == "2":  # emergency: Pushover requires retry (>= 30 s) and expire (<= 3 h)
        form["retry"] = str(_seconds(cfg, "retry", RETRY))
        form["expire"] = str(_seconds(cfg, "expire", EXPIRE))
    if cfg.get("ttl") is not None and priority != "2":  # Pushover ignores a TTL on emergency messages
        form["ttl"] = str(_seconds(cfg, "ttl", 0))
    if cfg.get("html"):
        form["html"] = "1"
    if cfg.get("monospace"):
        form["monospace"] = "1"
    return {k: v for k, v in form.items() if v != ""}


class PushoverChannel:
    def __init__(self, integration: str, cfg: PushoverConfig, global_cfg: GlobalConfig,
                 session: aiohttp.ClientSession, templates: NotifyTemplates | None = None) -> None:
        self.integration, self.cfg, self.session, self.templates = integration, cfg, session, templates
        self.http = cfg.http() or global_cfg.http_config
        self.url = cfg.get("api_url") or API_URL

    async def send(self, n: Notification) -> str:
        c = self.cfg
        token = read_secret(c.get("token", ""), c.get("token_file", ""), "Pushover token")
        user = read_secret(c.get("user_key", ""), c.get("user_key_file", ""), "Pushover user_key")
        with template_errors():
            form = pushover_form(c, token, user, n, self.templates)
        body = urlencode(form).encode()
        headers = {**auth_headers(self.http), "Content-Type": "application/x-www-form-urlencoded"}
        _, answer = await http_request(self.session, "POST", self.url, body, headers, http=self.http)
        try:
            got = orjson.loads(answer)
        except orjson.JSONDecodeError:
            return ""
        if isinstance(got, dict) and got.get("status") != 1:
            raise DeliveryError(f"Pushover refused the message: {got.get('errors')}", False)
        return f"request {got.get('request', '')}" if isinstance(got, dict) else ""
