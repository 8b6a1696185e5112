"""WeChat Work (WeCom) application messages: an access token from `gettoken` (corp id and application
secret), kept until it expires or WeChat says it did (errcode 42001, then fetched again on the retry), and
`message/send` with `touser`/`toparty`/`totag`, `agentid` and a text or markdown message. WeChat answers
HTTP 200 with an `errcode`; anything but 0 is a failed delivery."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.receiver_configs import GlobalConfig
from watchkeeper.core.notify.receiver_kinds import WechatConfig
from watchkeeper.core.notify.templates import NotifyTemplates
from watchkeeper.plumbing.log_filters import KNOWN_SECRETS
from watchkeeper.sinks.channels.base import DeliveryError, http_request, template_errors
from watchkeeper.sinks.channels.texts import KindTexts, truncate_bytes

API_URL = "https://qyapi.weixin.qq.com/cgi-bin/"
MESSAGE_BYTES = 2048  # WeChat's cap on a text message's content
TOKEN_EXPIRED = 42001


def wechat_message(cfg: WechatConfig, n: Notification, templates: NotifyTemplates | None = None) -> dict[str, Any]:
    text = KindTexts("wechat", cfg, n, templates)
    kind = cfg.get("message_type", "text")
    msg: dict[str, Any] = {
        "touser": text("to_user"), "toparty": text("to_party"), "totag": text("to_tag"),
        "agentid": text("agent_id"), "msgtype": kind, kind: {"content": truncate_bytes(text("message"), MESSAGE_BYTES)},
        "safe": "0",
    }
    return msg


def _answer(body: str, what: str) -> dict[str, Any]:
    try:
        got = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise DeliveryError(f"WeChat {what}: an answer that is not JSON: {body[:200]}", True) from None
    if not isinstance(got, dict):
        raise DeliveryError(f"WeChat {what}: unexpected answer {body[:200]}", True)
    return got


class WechatChannel:
    def __init__(self, integration: str, cfg: WechatConfig, global_cfg: GlobalConfig,
                 session: aiohttp.ClientSession, templates: NotifyTemplates | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.integration, self.cfg, self.session, self.clock = integration, cfg, session, clock
        self.templates = templates
        self.http = cfg.http() or global_cfg.http_config
        url = str(cfg.get("api_url") or global_cfg.wechat_api_url or API_URL)
        self.api_url = url if url.endswith("/") else url + "/"
        self.secret = str(cfg.get("api_secret") or global_cfg.wechat_api_secret)
        self.corp_id = str(cfg.get("corp_id") or global_cfg.wechat_api_corp_id)
        self.token, self.token_until = "", 0.0

    async def _token(self) -> str:
        if self.token and self.clock() < self.token_until:
            return self.token
        url = f"{self.api_url}gettoken?corpid={quote(self.corp_id)}&corpsecret={quote(self.secret)}"
        _, body = await http_request(self.session, "GET", url, None, {}, http=self.http)
        got = _answer(body, "gettoken")
        if got.get("errcode", 0) != 0 or not got.get("access_token"):
            raise DeliveryError(f"WeChat gettoken: errcode {got.get('errcode')}: {got.get('errmsg', '')}", False)
        self.token = str(got["access_token"])
        KNOWN_SECRETS.add(self.token)
        # WeChat says how long the token lives (7200 s); renew a minute early.
        self.token_until = self.clock() + max(0.0, float(got.get("expires_in", 7200)) - 60)
        return self.token

    async def send(self, n: Notification) -> str:
        with template_errors():
            msg = wechat_message(self.cfg, n, self.templates)
        token = await self._token()
        url = f"{self.api_url}message/send?access_token={quote(token)}"
        _, body = await http_request(self.session, "POST", url, orjson.dumps(msg),
                                     {"Content-Type": "application/json"}, http=self.http)
        got = _answer(body, "message/send")
        code = got.get("errcode", 0)
        if code == TOKEN_EXPIRED:
            self.token = ""
            raise DeliveryError("WeChat: access token expired (errcode 42001); a new one is fetched on retry", True)
        if code != 0:
            raise DeliveryError(f"WeChat message/send: errcode {code}: {got.get('errmsg', '')}", False)
        return f"msgid {got.get('msgid', '')}" if got.get("msgid") else ""
