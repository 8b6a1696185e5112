"""Slack incoming webhook: one message with one attachment, coloured by status, like Alertmanager's."""

from __future__ import annotations

from typing import Any

import aiohttp

from core.notify.notification import Notification
from core.notify.receiver_configs import GlobalConfig, SlackConfig
from core.notify.text_template import render_template
from sinks.channels.base import DeliveryError, post_json


def default_title(n: Notification) -> str:
    head = f"[{n.status.upper()}:{len(n.firing())}]" if n.status == "firing" else "[RESOLVED]"
    return f"{head} " + " ".join(v for _, v in sorted(n.group_labels.items()))


def default_text(n: Notification) -> str:
    lines = []
    for a in n.alerts:
        what = a.annotations.get("summary") or a.annotations.get("description") or a.rule
        labels = ", ".join(f"{k}={v}" for k, v in sorted(a.labels.items()))
        lines.append(f"• {a.state}: {what} ({labels})")
    return "\n".join(lines)


def slack_message(cfg: SlackConfig, n: Notification) -> dict[str, Any]:
    data = n.template_data()
    title = render_template(cfg.title, data) if cfg.title else default_title(n)
    text = render_template(cfg.text, data) if cfg.text else default_text(n)
    color = cfg.color or ("danger" if n.status == "firing" else "good")
    msg: dict[str, Any] = {"username": cfg.username, "attachments": [
        {"title": title, "title_link": n.external_url or None, "text": text, "color": color, "fallback": title,
         "mrkdwn_in": ["text"]}]}
    if cfg.channel:
        msg["channel"] = cfg.channel
    return msg


class SlackChannel:
    def __init__(self, integration: str, cfg: SlackConfig, global_cfg: GlobalConfig,
                 session: aiohttp.ClientSession) -> None:
        self.integration, self.cfg, self.session = integration, cfg, session
        self.url = cfg.api_url or global_cfg.slack_api_url

    async def send(self, n: Notification) -> None:
        if not self.url:
            raise DeliveryError("no Slack api_url (set it in the slack config or global.slack_api_url)", False)
        await post_json(self.session, self.url, slack_message(self.cfg, n), secret_url=True)
