"""Who may talk to Watchkeeper's HTTP listeners (push API, dashboard): a token off loopback, no browser of
another site, no foreign `Host`.

Three attacks, three checks, one aiohttp middleware:

- **Anyone on the network.** A listener bound off loopback needs a token (`check_listener` refuses to start
  without one). The token comes as `Authorization: Bearer <token>` or as the password of basic auth (any
  user name), so Prometheus' `remote_write` `authorization:` and `basic_auth:` both work; the dashboard also
  takes `?token=` once and answers with an HttpOnly, SameSite=Strict cookie. Compared in constant time.
- **A web page the operator visits** (CSRF): a browser on another origin can POST `text/plain` to
  127.0.0.1 without a preflight. Browsers say where a request comes from (`Origin`, `Sec-Fetch-Site`), so a
  request whose `Origin` is not this server, or which the browser marks `cross-site`/`same-site`, is refused.
  The dashboard lets a top-level GET navigation through (a link in a Slack message), which cannot read
  anything back; never a POST or DELETE.
- **DNS rebinding**: a page on `evil.example` whose name then resolves to 127.0.0.1 is "same origin" for the
  browser, but its requests carry `Host: evil.example`. On loopback, only loopback names and the configured
  `allowed_hosts` are taken.

Clients that are not browsers (curl, Prometheus, the SDKs) send neither `Origin` nor `Sec-Fetch-*`, so the
README's curl examples keep working on loopback without a token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from watchkeeper.plumbing.errors import WatchkeeperError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_SAFE_METHODS = ("GET", "HEAD")
_FOREIGN_FETCH_SITES = ("cross-site", "same-site")


class ListenerError(WatchkeeperError):
    """A listener configured so that anyone on the network could use it."""


def is_loopback(host: str) -> bool:
    """True if `host` (a bind address or name) reaches only this machine: 127.0.0.0/8, ::1, localhost.
    An empty host means every interface, and a name counts only if every address it resolves to is loopback."""
    host = host.strip().strip("[]")
    if not host:
        return False
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(str(i[4][0]).split("%")[0]).is_loopback for i in infos)


def check_listener(section: str, host: str, token: str, env_var: str) -> None:
    """Refuse a listener off loopback without a token, saying how to set one."""
    if token or is_loopback(host):
        return
    raise ListenerError(
        f"{section}.host is {host or '(all interfaces)'!r}, which is not a loopback address, and no token is set: "
        f"anyone who can reach the port could use it. Set {section}.token in watchkeeper.yaml or the "
        f"{env_var} environment variable (e.g. `export {env_var}=$(openssl rand -hex 32)`), or bind "
        f"{section}.host to 127.0.0.1."
    )


def _digest(value: str) -> bytes:
    # Comparing digests of equal length hides the token's length as well as its content.
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


def token_matches(given: str, token: str) -> bool:
    """Constant-time comparison of a presented credential with the configured token."""
    return hmac.compare_digest(_digest(given), _digest(token))


def presented_credentials(request: web.Request) -> list[str]:
    """The credentials a request carries: the bearer token, and the password of basic auth."""
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return [value]
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return []
        return [decoded.partition(":")[2]]
    return []


def _host_name(host_header: str) -> str:
    """The host part of a `Host` header (`[::1]:8080` -> `::1`, `Example.com:80` -> `example.com`)."""
    try:
        return (urlsplit("//" + host_header).hostname or "").lower()
    except ValueError:
        return ""


def _same_authority(origin: str, host_header: str) -> bool:
    """True if the page's `Origin` is this server as the browser addressed it (`Host`). Without a port in
    `Host` the names decide: behind a TLS proxy the origin is https while this listener sees http."""
    try:
        o = urlsplit(origin)
        h = urlsplit("//" + host_header)
        if not o.hostname or o.hostname.lower() != (h.hostname or "").lower():
            return False
        return h.port is None or (o.port or {"http": 80, "https": 443}.get(o.scheme, 0)) == h.port
    except ValueError:
        return False


@dataclass(frozen=True)
class GuardOptions:
    """What one listener accepts. `config_section` names the config keys in error messages."""

    config_section: str
    bind_host: str
    token: str = ""
    allowed_hosts: tuple[str, ...] = ()
    # Paths open without a token (liveness probes), still subject to the origin and Host checks.
    public_paths: frozenset[str] = frozenset()
    # Let a browser's top-level GET navigation from another site through (dashboard links in notifications).
    allow_navigation: bool = False
    # The dashboard's browser login: `?token=` sets this cookie; None: no cookie login (push API).
    cookie_name: str | None = None
    realm: str = "watchkeeper"


def _forbidden(text: str) -> web.HTTPForbidden:
    return web.HTTPForbidden(text=text + "\n", content_type="text/plain")


def _cookie_value(token: str) -> str:
    """The cookie holds a keyed digest of the token, not the token: a leaked cookie jar does not leak it."""
    return hmac.new(token.encode(), b"watchkeeper dashboard session", hashlib.sha256).hexdigest()


class Guard:
    """The checks of the module docstring, in order: Host, origin, token."""

    def __init__(self, options: GuardOptions) -> None:
        self.o = options
        self.loopback = is_loopback(options.bind_host)
        self.allowed = {h.lower() for h in options.allowed_hosts} | {options.bind_host.lower().strip("[]")}

    def host_allowed(self, host_header: str | None) -> bool:
        if host_header is None:
            return True  # HTTP/1.0 without Host: not a browser (browsers always send it)
        name = _host_name(host_header)
        if name in self.allowed:
            return True
        if not self.loopback:
            # Off loopback the token guards, and the machine may be reached by any of its names.
            return not self.o.allowed_hosts
        # Literals only: resolving the name would find the rebinding attacker's 127.0.0.1.
        return name == "localhost" or name.endswith(".localhost") or _is_loopback_ip(name)

    def foreign_origin(self, request: web.Request) -> str | None:
        """Why this request comes from another site's page, or None."""
        if self.o.allow_navigation and request.method in _SAFE_METHODS and \
                request.headers.get("Sec-Fetch-Mode") == "navigate":
            return None
        origin = request.headers.get("Origin")
        if origin is not None:
            host = request.headers.get("Host")
            if origin == "null" or host is None or not _same_authority(origin, host):
                return f"Origin {origin!r} is not this server"
        site = request.headers.get("Sec-Fetch-Site", "").lower()
        if site in _FOREIGN_FETCH_SITES:
            return f"Sec-Fetch-Site is {site}"
        return None

    def authorized(self, request: web.Request) -> bool:
        token = self.o.token
        if not token or request.path in self.o.public_paths:
            return True
        if any(token_matches(c, token) for c in presented_credentials(request)):
            return True
        if self.o.cookie_name:
            cookie = request.cookies.get(self.o.cookie_name)
            if cookie is not None and token_matches(cookie, _cookie_value(token)):
                return True
        return False

    def unauthorized(self) -> web.HTTPUnauthorized:
        how = ("Authorization: Bearer <token>, basic auth with the token as password"
               + (", or ?token=<token> once in the browser" if self.o.cookie_name else ""))
        challenge = "Basic" if self.o.cookie_name else "Bearer"
        return web.HTTPUnauthorized(
            text=f"missing or wrong token ({how}); it is {self.o.config_section}.token in watchkeeper.yaml\n",
            content_type="text/plain", headers={"WWW-Authenticate": f'{challenge} realm="{self.o.realm}"'})

    def login(self, request: web.Request) -> web.HTTPSeeOther | None:
        """`?token=` from a browser: set the session cookie and redirect to the same URL without the token
        (so it stays out of the history and the address bar). None if the request carries no `token`."""
        given = request.query.get("token")
        if self.o.cookie_name is None or given is None or not self.o.token:
            return None
        if not token_matches(given, self.o.token):
            raise self.unauthorized()
        query = request.url.query.copy()
        query.popall("token")
        response = web.HTTPSeeOther(location=str(request.rel_url.with_query(query)))
        response.set_cookie(self.o.cookie_name, _cookie_value(self.o.token), httponly=True, samesite="Strict",
                            secure=request.secure, path="/")
        return response

    def middleware(self) -> Middleware:
        @web.middleware
        async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
            if not self.host_allowed(request.headers.get("Host")):
                raise _forbidden(
                    f"Host {request.headers.get('Host')!r} is not this server's name (refused against DNS "
                    f"rebinding); a reverse proxy's name goes in {self.o.config_section}.allowed_hosts")
            why = self.foreign_origin(request)
            if why is not None:
                raise _forbidden(f"cross-origin request refused: {why} (browsers on other sites may not use "
                                 f"this endpoint)")
            login = self.login(request)
            if login is not None:
                raise login
            if not self.authorized(request):
                raise self.unauthorized()
            return await handler(request)

        return guard


def _is_loopback_ip(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def guard_middleware(options: GuardOptions) -> Middleware:
    """The aiohttp middleware for `options` (add it first, so nothing runs for a refused request)."""
    return Guard(options).middleware()
