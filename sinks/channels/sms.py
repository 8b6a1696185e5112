"""SMS delivery: Twilio's Messages API, Amazon SNS `Publish` to a phone number (SigV4-signed by botocore),
or any HTTP gateway. The text and the rate limit are `core.notify.sms`; this module asks the limiter before
sending, gives the slot back when a send fails (so a retry is judged afresh), and turns the providers'
answers into the same retryable or final `DeliveryError`s as the other channels (5xx and 429 retry,
honouring `Retry-After`; other 4xx, such as a bad number, do not)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from urllib.parse import urlencode

import aiohttp
import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from watchkeeper.core.notify.config import DEFAULT_REPEAT_INTERVAL, Route
from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.sms import SmsConfig, SmsLimiter, SnsProvider, sms_text
from watchkeeper.core.notify.templates import NotifyTemplates
from watchkeeper.core.secrets import mask_url
from watchkeeper.sinks.channels.base import TIMEOUT, DeliveryError, HeldBack, retry_after, template_errors

FORM = "application/x-www-form-urlencoded; charset=utf-8"
_SNS_CODE = re.compile(r"<Code>([^<]*)</Code>")
_SNS_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")
_SNS_ID = re.compile(r"<MessageId>([^<]*)</MessageId>")
# SNS answers some throttling with 400 and one of these codes; the AWS SDKs retry them, so do we.
_SNS_THROTTLED = frozenset({"Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded"})


def repeat_intervals(root: Route | None) -> Callable[[str], float]:
    """The repeat_interval of the route a group key belongs to (a group key is `<route key>:<labels>`)."""
    keys: dict[str, float] = {}

    def walk(r: Route) -> None:
        keys[r.key] = r.repeat_interval
        for child in r.routes:
            walk(child)

    if root is not None:
        walk(root)
    ordered = sorted(keys, key=len, reverse=True)  # a child's key extends its parent's

    def of(group_key: str) -> float:
        for k in ordered:
            if group_key.startswith(k + ":{"):
                return keys[k]
        return DEFAULT_REPEAT_INTERVAL

    return of


def sns_signed_headers(p: SnsProvider, body: bytes) -> dict[str, str]:
    """SigV4 headers (`Authorization`, `X-Amz-Date`, and the session token if any) by botocore's signer."""
    req = AWSRequest(method="POST", url=p.url(), data=body, headers={"Content-Type": FORM})
    creds = Credentials(p.access_key_id, p.secret_access_key, p.session_token or None)
    SigV4Auth(creds, "sns", p.region).add_auth(req)
    return dict(req.headers.items())


class SmsChannel:
    def __init__(self, integration: str, cfg: SmsConfig, session: aiohttp.ClientSession,
                 interval_of: Callable[[str], float] | None = None, clock: Callable[[], float] = time.time,
                 templates: NotifyTemplates | None = None) -> None:
        self.integration, self.cfg, self.session, self.clock = integration, cfg, session, clock
        self.templates = templates
        self.interval_of = interval_of or repeat_intervals(None)
        self.limiter = SmsLimiter(cfg.max_per_hour)

    async def send(self, n: Notification) -> str:
        with template_errors():
            text = sms_text(self.cfg, n, self.templates)
        interval = self.cfg.per_group_interval or self.interval_of(n.group_key)
        slot = self.limiter.take(n.group_key, n.status, interval, self.clock())
        if isinstance(slot, str):
            raise HeldBack(slot)
        try:
            ref = await self._deliver(n, text)
        except BaseException:
            self.limiter.release(slot)
            raise
        return f"{self.cfg.provider} {ref}: {len(text)} characters".replace("  ", " ")

    async def _deliver(self, n: Notification, text: str) -> str:
        cfg = self.cfg
        if cfg.twilio is not None:
            t = cfg.twilio
            form = {"To": cfg.to, "Body": text}
            form.update({"From": t.from_} if t.from_ else {"MessagingServiceSid": t.messaging_service_sid})
            status, body = await self._request("POST", t.messages_url(), urlencode(form).encode(),
                                               {"Content-Type": FORM, "Authorization": t.basic_auth()})
            return _twilio_sid(body)
        if cfg.sns is not None:
            payload = urlencode(cfg.sns.publish_form(cfg.to, text)).encode()
            status, body = await self._request("POST", cfg.sns.url(), payload, sns_signed_headers(cfg.sns, payload))
            found = _SNS_ID.search(body)
            return found.group(1) if found else ""
        assert cfg.http is not None  # SmsConfig validates that exactly one provider is set
        h = cfg.http
        payload = h.render_body(cfg.to, text, n.template_data())
        status, body = await self._request(h.method, h.url, payload, {"Content-Type": h.content_type, **h.headers})
        return f"HTTP {status}"

    async def _request(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        shown = mask_url(url)
        try:
            async with self.session.request(method, url, data=body, headers=headers, timeout=TIMEOUT) as resp:
                text = await resp.text()
                if resp.status < 300:
                    return resp.status, text
                retryable = resp.status >= 500 or resp.status == 429
                code = _provider_error(text)
                if self.cfg.sns is not None and code.split(":")[0] in _SNS_THROTTLED:
                    retryable = True
                raise DeliveryError(f"HTTP {resp.status} from {shown}: {code or text[:200]}", retryable,
                                    retry_after(resp.headers, time.time()) if retryable else None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(f"{type(exc).__name__} sending SMS to {shown}: {exc}", True) from None
        except ValueError as exc:  # an unusable URL: a configuration error, not worth retrying
            raise DeliveryError(f"cannot send SMS to {shown}: {exc}", False) from None


def _twilio_sid(body: str) -> str:
    try:
        return str(orjson.loads(body).get("sid", ""))
    except (orjson.JSONDecodeError, AttributeError):
        return ""


def _provider_error(body: str) -> str:
    """`code: message` from Twilio's JSON error or SNS's XML ErrorResponse; empty for anything else."""
    if "<ErrorResponse" in body:
        code, msg = _SNS_CODE.search(body), _SNS_MESSAGE.search(body)
        return f"{code.group(1) if code else ''}: {msg.group(1) if msg else ''}"[:300]
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    if isinstance(data, dict) and "code" in data and "message" in data:
        return f"{data['code']}: {data['message']}"[:300]
    return ""
