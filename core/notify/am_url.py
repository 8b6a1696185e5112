"""Alertmanager's URL fields (its config.URL and config.SecretURL: `slack_api_url`, a webhook's `url`, a
kind's `api_url` or `webhook_url`) are parsed at load by Go's url.Parse and then must be http or https with
a host; an SMTP `smarthost` (its HostPort) must be host:port. Written from Go's net/url and net.SplitHostPort
and Alertmanager's parseURL, so that a placeholder left in a config (`api_url: ${SLACK_WEBHOOK_URL}`,
`slack_api_url: url`, `''`, `smtp_smarthost: ${SMTP_HOST}`) is refused at load with the message amtool
gives, not at the first notification."""

from __future__ import annotations

import json
import re
from typing import Any

_HEX2 = re.compile(r"[0-9A-Fa-f]{2}")
# Characters Go's url.shouldEscape lets stand in a host name (besides letters and digits).
_HOST_OK = set("-_.~!$&'()*+,;=:[]<>\"")
_USERINFO_OK = set("-._:~!$&'()*+,;=%@")
_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


class URLError(ValueError):
    """A URL Alertmanager would refuse; the message is amtool's."""


def _q(s: str) -> str:
    """Go's %q: double quotes, backslash escapes, control characters as \\xNN."""
    out = []
    for c in s:
        if c in "\"\\":
            out.append("\\" + c)
        elif c in _GO_ESCAPES:
            out.append(_GO_ESCAPES[c])
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\x{ord(c):02x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def parse_url(value: Any) -> str:
    """The URL as written if Alertmanager (v0.25's parseURL) accepts it, else URLError with its message.
    A YAML number or boolean is its text, as Go's yaml.v2 decodes any scalar into a string."""
    if isinstance(value, dict | list):
        raise URLError("expected a URL string")
    text = value if isinstance(value, str) else json.dumps(value)

    def fail(message: str) -> URLError:
        return URLError(f"parse {_q(text)}: {message}")

    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise fail("net/url: invalid control character in URL")
    rest, hash_, fragment = text.partition("#")
    if hash_:
        _unescape(fragment, fail)
    scheme = ""
    for i, c in enumerate(rest):  # Go's getScheme
        if c.isascii() and (c.isalpha() or (i > 0 and (c.isdigit() or c in "+-."))):
            continue
        if c == ":":
            if i == 0:
                raise fail("missing protocol scheme")
            scheme, rest = rest[:i].lower(), rest[i + 1:]
        break
    rest = rest.partition("?")[0]
    host = ""
    if not rest.startswith("/") and not scheme and ":" in rest.partition("/")[0]:
        raise fail("first path segment in URL cannot contain colon")
    if rest.startswith("//") and (scheme or not rest.startswith("///")):
        authority, _, rest = rest[2:].partition("/")
        userinfo, at, host = authority.rpartition("@")
        if at:
            if any(c.isascii() and not c.isalnum() and c not in _USERINFO_OK for c in userinfo):
                raise fail("net/url: invalid userinfo")
            _unescape(userinfo, fail)
        _check_host(host, fail)
    elif not rest.startswith("/") and scheme:
        rest = ""  # opaque ("http:foo"): no host
    _unescape(rest, fail)
    if scheme not in ("http", "https"):
        raise URLError(f"unsupported scheme {_q(scheme)} for URL")
    if not host:
        raise URLError("missing host for URL")
    return text


def _unescape(s: str, fail: Any, host: bool = False) -> None:
    i = s.find("%")
    while i != -1:
        if not _HEX2.fullmatch(s[i + 1:i + 3]):
            raise fail(f"invalid URL escape {_q(s[i:i + 3])}")
        if host and int(s[i + 1], 16) < 8 and s[i:i + 3] != "%25":  # in a host, only non-ASCII bytes
            raise fail(f"invalid URL escape {_q(s[i:i + 3])}")
        i = s.find("%", i + 3)


def _check_host(host: str, fail: Any) -> None:
    if host.startswith("["):
        end = host.rfind("]")
        if end < 0:
            raise fail("missing ']' in host")
        port = host[end + 1:]
    else:
        colon = host.rfind(":")
        port = host[colon:] if colon >= 0 else ""
    if port and not (port.startswith(":") and port[1:].isascii() and (port[1:].isdigit() or port == ":")):
        raise fail(f"invalid port {_q(port)} after host")
    _unescape(host, fail, host=True)
    for c in host:
        if c.isascii() and not c.isalnum() and c not in _HOST_OK and c != "%":
            raise fail(f"invalid character {_q(c)} in host name")


def parse_host_port(value: Any) -> str:
    """An SMTP `smarthost` as Alertmanager's HostPort takes it (Go's net.SplitHostPort, then a port that
    is not empty); `''` is unset. Returns it as written, else URLError with amtool's message."""
    if isinstance(value, dict | list):
        raise URLError("expected host:port")
    text = value if isinstance(value, str) else json.dumps(value)
    if not text:
        return text

    def fail(why: str) -> URLError:
        return URLError(f"address {text}: {why}")

    colon = text.rfind(":")
    if colon < 0:
        raise fail("missing port in address")
    start, end_at = 0, 0
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise fail("missing ']' in address")
        if end + 1 != colon:
            raise fail("too many colons in address" if end + 1 < len(text) and text[end + 1] == ":"
                       else "missing port in address")
        start, end_at = 1, end + 1
    elif ":" in text[:colon]:
        raise fail("too many colons in address")
    if "[" in text[start:]:
        raise fail("unexpected '[' in address")
    if "]" in text[end_at:]:
        raise fail("unexpected ']' in address")
    if colon == len(text) - 1:
        raise URLError(f"address {_q(text)}: port cannot be empty")
    return text
