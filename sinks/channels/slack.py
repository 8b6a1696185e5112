"""Slack incoming webhook: one message with one attachment, coloured by status, as Alertmanager's."""

from __future__ import annotations

from typing import Any

import aiohttp

from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.receiver_configs import GlobalConfig, SlackConfig
from watchkeeper.core.notify.templates import NotifyTemplates, default_templates, notification_data
from watchkeeper.sinks.channels.base import DeliveryError, post_json, template_errors


def slack_message(cfg: SlackConfig, n: Notification, templates: NotifyTemplates | None = None) -> dict[str, Any]:
    """Alertmanager's Slack message: one attachment; every text field rendered from its template (the
    defaults are Alertmanager's `slack.default.*` names); empty fields are left out, as Go's omitempty."""
    tmpl = templates or default_templates()
    data = notification_data(n)

    def r(text: str) -> str:
        return tmpl.render(text, data)

    att: dict[str, Any] = {"title": r(cfg.title), "title_link": r(cfg.title_link), "pretext": r(cfg.pretext),
                           "text": r(cfg.text), "fallback": r(cfg.fallback), "callback_id": r(cfg.callback_id),
                           "footer": r(cfg.footer), "color": r(cfg.color), "image_url": r(cfg.image_url),
                           "thumb_url": r(cfg.thumb_url)}
    att = {k: v for k, v in att.items() if v}
    att["mrkdwn_in"] = cfg.mrkdwn_in
    msg: dict[str, Any] = {"username": r(cfg.username), "icon_emoji": r(cfg.icon_emoji),
                           "icon_url": r(cfg.icon_url), "channel": r(cfg.channel)}
    msg = {k: v for k, v in msg.items() if v}
    if cfg.link_names:
        msg["link_names"] = True
    msg["attachments"] = [att]
    return msg


class SlackChannel:
    def __init__(self, integration: str, cfg: SlackConfig, global_cfg: GlobalConfig,
                 session: aiohttp.ClientSession, templates: NotifyTemplates | None = None) -> None:
        self.integration, self.cfg, self.session, self.templates = integration, cfg, session, templates
        self.url = cfg.api_url or global_cfg.slack_api_url

    async def send(self, n: Notification) -> None:
        if not self.url:
            raise DeliveryError("no Slack api_url (set it in the slack config or global.slack_api_url)", False)
        with template_errors():
            msg = slack_message(self.cfg, n, self.templates)
        await post_json(self.session, self.url, msg, secret_url=True)
