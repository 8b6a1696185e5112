"""What every channel is, and how HTTP answers become retryable or final errors."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import aiohttp
import orjson
import yarl

from core.notify.notification import Notification
from core.notify.receiver_configs import HttpConfig
from core.notify.templates import TemplateError
from core.secrets import mask_url

TIMEOUT = aiohttp.ClientTimeout(total=10)


class DeliveryError(Exception):
    """`retry_after`: the seconds the peer asked us to wait (its `Retry-After`), which the retry honours."""

    def __init__(self, message: str, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class HeldBack(Exception):
    """A notification deliberately not sent (a rate limit): recorded as `held` with the reason, not retried."""


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """RFC 9110 `Retry-After`: delay-seconds or an HTTP date; None when absent or unreadable."""
    value = headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


class Channel(Protocol):
    integration: str

    async def send(self, n: Notification) -> str | None:
        """Deliver `n` or raise DeliveryError; a returned text is a note for the delivery record."""
        ...


def auth_headers(http: HttpConfig | None) -> dict[str, str]:
    if http is None:
        return {}
    if http.authorization is not None and http.authorization.credentials:
        return {"Authorization": f"{http.authorization.type} {http.authorization.credentials}"}
    if http.bearer_token:
        return {"Authorization": f"Bearer {http.bearer_token}"}
    return {}


def _scrub(text: str, url: str, shown: str) -> str:
    """`text` with `url` (as written, and as aiohttp's yarl prints it) replaced by its masked form."""
    for form in {url, str(yarl.URL(url, encoded=False)), str(yarl.URL(url, encoded=True))}:
        text = text.replace(form, shown)
    return text


async def post_json(session: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str] | None = None,
                    *, secret_url: bool = False) -> str:
    """POST JSON; 2xx returns the body, 5xx/429/timeouts/connection errors are retryable, other 4xx not.

    Errors name the URL masked (`core.secrets.mask_url`); a `secret_url` (a webhook's or Slack's, which
    carry their credential in the path) shows only scheme, host and port."""
    shown = mask_url(url, hide_path=secret_url)
    try:
        async with session.post(url, data=orjson.dumps(body), timeout=TIMEOUT,
                                headers={"Content-Type": "application/json", **(headers or {})}) as resp:
            text = await resp.text()
            if resp.status < 300:
                return text
            retryable = resp.status >= 500 or resp.status == 429
            raise DeliveryError(f"HTTP {resp.status} from {shown}: {_scrub(text[:200], url, shown)}", retryable,
                                retry_after(resp.headers, time.time()) if retryable else None)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DeliveryError(f"{type(exc).__name__} posting to {shown}: {_scrub(str(exc), url, shown)}", True) from None
    except ValueError as exc:  # yarl's InvalidURL and friends: a configuration error, not worth retrying
        raise DeliveryError(f"cannot post to {shown}: {_scrub(str(exc), url, shown)}", False) from None


@contextmanager
def template_errors() -> Iterator[None]:
    """A template that fails on this notification's data (an `index` out of range, say; everything that
    can be known without data was checked at load) fails the delivery, not retried: a retry fails too."""
    try:
        yield
    except (TemplateError, ValueError, TypeError) as exc:
        raise DeliveryError(f"template: {exc}", False) from None
