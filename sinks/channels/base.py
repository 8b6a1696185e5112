"""What every channel is, and how HTTP answers become retryable or final errors."""

from __future__ import annotations

import base64
import ssl
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import aiohttp
import orjson
import yarl

from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.receiver_configs import HttpConfig
from watchkeeper.core.notify.templates import TemplateError
from watchkeeper.core.secrets import mask_url
from watchkeeper.plumbing.log_filters import KNOWN_SECRETS, redact

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


def read_secret(inline: str, path: str, what: str) -> str:
    """A secret given inline or in a file (Alertmanager's `*_file` keys, read at each send as Alertmanager
    does, so a rotated file is picked up); a file's value is registered with the redactor before use."""
    if inline or not path:
        return inline
    try:
        with open(path, encoding="utf-8") as f:
            value = f.read().strip()
    except OSError as exc:
        raise DeliveryError(f"cannot read {what} from {path}: {exc.strerror or exc}", False) from None
    KNOWN_SECRETS.add(value)
    return value


def auth_headers(http: HttpConfig | None) -> dict[str, str]:
    """Prometheus' HTTP client credentials as an `Authorization` header: `authorization` (with
    `credentials` or `credentials_file`), `bearer_token(_file)` or `basic_auth` (`password(_file)`)."""
    if http is None:
        return {}
    a = http.authorization
    if a is not None and (a.credentials or a.credentials_file):
        return {"Authorization": f"{a.type} {read_secret(a.credentials, a.credentials_file, 'credentials')}"}
    if http.bearer_token or http.bearer_token_file:
        return {"Authorization": f"Bearer {read_secret(http.bearer_token, http.bearer_token_file, 'bearer token')}"}
    if http.basic_auth:
        b = http.basic_auth
        user = read_secret(str(b.get("username", "")), str(b.get("username_file", "")), "basic_auth username")
        password = read_secret(str(b.get("password", "")), str(b.get("password_file", "")), "basic_auth password")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        KNOWN_SECRETS.add(token)
        return {"Authorization": f"Basic {token}"}
    return {}


def ssl_context(http: HttpConfig | None) -> ssl.SSLContext | bool:
    """`http_config.tls_config` (`ca_file`, `cert_file`/`key_file`, `server_name` is aiohttp's Host,
    `insecure_skip_verify`) as an SSL context; True (the system's defaults) without one."""
    tls = http.tls_config if http is not None else None
    if not tls:
        return True
    try:
        ctx = ssl.create_default_context(cafile=tls.get("ca_file") or None)
        if tls.get("cert_file"):
            ctx.load_cert_chain(tls["cert_file"], tls.get("key_file") or None)
    except (OSError, ssl.SSLError) as exc:
        raise DeliveryError(f"http_config.tls_config: {exc}", False) from None
    if tls.get("insecure_skip_verify"):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _scrub(text: str, url: str, shown: str) -> str:
    """`text` with `url` (as written, and as aiohttp's yarl prints it) replaced by its masked form."""
    for form in {url, str(yarl.URL(url, encoded=False)), str(yarl.URL(url, encoded=True))}:
        text = text.replace(form, shown)
    return text


async def post_json(session: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str] | None = None,
                    *, secret_url: bool = False, http: HttpConfig | None = None) -> str:
    """POST JSON; 2xx returns the body, 5xx/429/timeouts/connection errors are retryable, other 4xx not.

    Errors name the URL masked (`core.secrets.mask_url`); a `secret_url` (a webhook's or Slack's, which
    carry their credential in the path) shows only scheme, host and port."""
    _, text = await http_request(session, "POST", url, orjson.dumps(body),
                                 {"Content-Type": "application/json", **(headers or {})},
                                 secret_url=secret_url, http=http)
    return text


async def http_request(session: aiohttp.ClientSession, method: str, url: str, body: bytes | None,
                       headers: dict[str, str], *, secret_url: bool = False,
                       http: HttpConfig | None = None) -> tuple[int, str]:
    """One request with the receiver's `http_config` (TLS; the caller adds its credentials to `headers`);
    (status, body) for a 2xx, else a DeliveryError: 5xx, 429, timeouts and connection errors retryable
    (with the peer's `Retry-After`), other answers final; the message has every URL masked and every
    known secret (core.secrets) replaced, so no caller can leak one."""
    shown = mask_url(url, hide_path=secret_url)
    ssl_arg = ssl_context(http)
    redirects = http.follow_redirects if http is not None else True
    try:
        async with session.request(method, url, data=body, timeout=TIMEOUT, headers=headers, ssl=ssl_arg,
                                   allow_redirects=redirects) as resp:
            text = await resp.text()
            if resp.status < 300:
                return resp.status, text
            retryable = resp.status >= 500 or resp.status == 429
            raise DeliveryError(redact(f"HTTP {resp.status} from {shown}: {_scrub(text[:200], url, shown)}"), retryable,
                                retry_after(resp.headers, time.time()) if retryable else None)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DeliveryError(redact(f"{type(exc).__name__} posting to {shown}: {_scrub(str(exc), url, shown)}"),
                            True) from None
    except ValueError as exc:  # yarl's InvalidURL and friends: a configuration error, not worth retrying
        raise DeliveryError(redact(f"cannot post to {shown}: {_scrub(str(exc), url, shown)}"), False) from None


@contextmanager
def template_errors() -> Iterator[None]:
    """A template that fails on this notification's data (an `index` out of range, say; everything that
    can be known without data was checked at load) fails the delivery, not retried: a retry fails too."""
    try:
        yield
    except (TemplateError, ValueError, TypeError) as exc:
        raise DeliveryError(redact(f"template: {exc}"), False) from None
