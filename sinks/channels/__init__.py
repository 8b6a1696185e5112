"""Delivery channels: one module per integration; `build_channels` turns a receiver's configs into them."""

from __future__ import annotations

import aiohttp

from core.notify.config import Route
from core.notify.receiver_configs import (
    AlertmanagerPushConfig,
    CommandConfig,
    EmailConfig,
    GlobalConfig,
    PagerdutyConfig,
    ReceiverConfig,
    SlackConfig,
    WebhookConfig,
)
from core.notify.sms import SmsConfig
from core.notify.templates import NotifyTemplates
from sinks.channels.alertmanager import AlertmanagerChannel
from sinks.channels.base import Channel, DeliveryError
from sinks.channels.command import CommandChannel
from sinks.channels.email import EmailChannel
from sinks.channels.pagerduty import PagerdutyChannel
from sinks.channels.slack import SlackChannel
from sinks.channels.sms import SmsChannel, repeat_intervals
from sinks.channels.webhook import WebhookChannel

__all__ = ["Channel", "DeliveryError", "build_channels"]


def build_channels(receiver: ReceiverConfig, global_cfg: GlobalConfig, session: aiohttp.ClientSession,
                   route: Route | None = None, templates: NotifyTemplates | None = None) -> dict[str, Channel]:
    """`route`, the config's route tree, gives SMS rate limits their default per-group interval;
    `templates`, the config's named templates, render the receivers' texts."""
    out: dict[str, Channel] = {}
    for name, c in receiver.integrations():
        if isinstance(c, WebhookConfig):
            out[name] = WebhookChannel(name, c, global_cfg, session)
        elif isinstance(c, SlackConfig):
            out[name] = SlackChannel(name, c, global_cfg, session, templates)
        elif isinstance(c, EmailConfig):
            out[name] = EmailChannel(name, c, global_cfg, templates)
        elif isinstance(c, PagerdutyConfig):
            out[name] = PagerdutyChannel(name, c, global_cfg, session, templates)
        elif isinstance(c, AlertmanagerPushConfig):
            out[name] = AlertmanagerChannel(name, c, session)
        elif isinstance(c, CommandConfig):
            out[name] = CommandChannel(name, c)
        elif isinstance(c, SmsConfig):
            out[name] = SmsChannel(name, c, session, repeat_intervals(route), templates=templates)
    return out
