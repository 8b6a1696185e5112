"""What every channel is, and how HTTP answers become retryable or final errors."""

from __future__ import annotations

from typing import Any, Protocol

import aiohttp
import orjson

from core.notify.notification import Notification
from core.notify.receiver_configs import HttpConfig

TIMEOUT = aiohttp.ClientTimeout(total=10)


class DeliveryError(Exception):
    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Channel(Protocol):
    integration: str

    async def send(self, n: Notification) -> None: ...


def auth_headers(http: HttpConfig | None) -> dict[str, str]:
    if http is None:
        return {}
    if http.authorization is not None and http.authorization.credentials:
        return {"Authorization": f"{http.authorization.type} {http.authorization.credentials}"}
    if http.bearer_token:
        return {"Authorization": f"Bearer {http.bearer_token}"}
    return {}


async def post_json(session: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str] | None = None) -> str:
    """POST JSON; 2xx returns the body, 5xx/429/timeouts/connection errors are retryable, other 4xx not."""
    try:
        async with session.post(url, data=orjson.dumps(body), timeout=TIMEOUT,
                                headers={"Content-Type": "application/json", **(headers or {})}) as resp:
            text = await resp.text()
            if resp.status < 300:
                return text
            retryable = resp.status >= 500 or resp.status == 429
            raise DeliveryError(f"HTTP {resp.status} from {url}: {text[:200]}", retryable)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DeliveryError(f"{type(exc).__name__} posting to {url}: {exc}", True) from None
