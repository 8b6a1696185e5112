"""Delivery channels: one module per integration; `build_channels` turns a receiver's configs into them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp

from watchkeeper.core.notify.config import Route
from watchkeeper.core.notify.receiver_configs import (
    AlertmanagerPushConfig,
    CommandConfig,
    EmailConfig,
    GlobalConfig,
    PagerdutyConfig,
    ReceiverConfig,
    SlackConfig,
    WebhookConfig,
)
from watchkeeper.core.notify.receiver_kinds import (
    DiscordConfig,
    KindConfig,
    MSTeamsConfig,
    MSTeamsV2Config,
    OpsGenieConfig,
    PushoverConfig,
    SNSConfig,
    TelegramConfig,
    VictorOpsConfig,
    WebexConfig,
    WechatConfig,
)
from watchkeeper.core.notify.sms import SmsConfig
from watchkeeper.core.notify.templates import NotifyTemplates
from watchkeeper.sinks.channels.alertmanager import AlertmanagerChannel
from watchkeeper.sinks.channels.base import Channel, DeliveryError
from watchkeeper.sinks.channels.command import CommandChannel
from watchkeeper.sinks.channels.discord import DiscordChannel
from watchkeeper.sinks.channels.email import EmailChannel
from watchkeeper.sinks.channels.msteams import MSTeamsChannel, MSTeamsV2Channel
from watchkeeper.sinks.channels.opsgenie import OpsgenieChannel
from watchkeeper.sinks.channels.pagerduty import PagerdutyChannel
from watchkeeper.sinks.channels.pushover import PushoverChannel
from watchkeeper.sinks.channels.slack import SlackChannel
from watchkeeper.sinks.channels.sms import SmsChannel, repeat_intervals
from watchkeeper.sinks.channels.sns import SNSChannel
from watchkeeper.sinks.channels.telegram import TelegramChannel
from watchkeeper.sinks.channels.victorops import VictorOpsChannel
from watchkeeper.sinks.channels.webex import WebexChannel
from watchkeeper.sinks.channels.webhook import WebhookChannel
from watchkeeper.sinks.channels.wechat import WechatChannel

__all__ = ["Channel", "DeliveryError", "build_channels"]

# Alertmanager's other kinds: the config model -> its channel (one table, so a kind cannot load undelivered).
KIND_CHANNELS: dict[type[KindConfig],
                    Callable[[str, Any, GlobalConfig, aiohttp.ClientSession, NotifyTemplates | None], Channel]] = {
    OpsGenieConfig: OpsgenieChannel, VictorOpsConfig: VictorOpsChannel, PushoverConfig: PushoverChannel,
    SNSConfig: SNSChannel, MSTeamsConfig: MSTeamsChannel, MSTeamsV2Config: MSTeamsV2Channel,
    DiscordConfig: DiscordChannel, TelegramConfig: TelegramChannel, WebexConfig: WebexChannel,
    WechatConfig: WechatChannel,
}


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
        elif isinstance(c, KindConfig):
            out[name] = KIND_CHANNELS[type(c)](name, c, global_cfg, session, templates)
    return out
