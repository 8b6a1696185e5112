"""Secrets never leave the configuration: masking of URLs and DSNs, and a redactor of known secret strings.

A secret reaches text in two ways. Structurally, inside a URL (a DSN's password, a `?token=` value, a Slack
webhook's path token), which `mask_url` hides wherever a URL is printed even if nobody told us it was secret.
And verbatim, anywhere (an exception that quotes a header, a hook's stderr echoing its env), which only a
list of the configured secrets can catch: `SecretRedactor` holds that list and replaces each one by
`<secret>`, as Alertmanager shows its `Secret` fields. Every log line, delivery error, notification record
and dashboard error body goes through one of them (the wiring is in `plumbing.log_filters`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

SECRET = "<secret>"
# Query keys and config field names whose values are secrets: the name's last word, any case (`auth_password`,
# `routing_key`, `X-Api-Key`, `token`; not `auth_username`).
_SECRET_NAME = re.compile(
    r"(?:^|[_.])(?:pass|passwd|password|pwd|token|secret|credentials?|key|apikey|auth|sig|signature)$",
    re.IGNORECASE,
)
# A path segment that looks like a credential rather than a name: long, and mixing letters and digits
# (Slack's 24-character webhook token, Discord's, Teams' GUIDs). Names like `alerts` or `v2` never match.
_TOKEN_SEGMENT = re.compile(r"^(?=[^/]*[0-9])(?=[^/]*[A-Za-z])[A-Za-z0-9_\-.~%+=]{16,}$")
# Where a hosted webhook keeps its credentials in the path: everything after these segments is secret.
_SECRET_PATH_AFTER = ("services", "webhooks", "webhookb2", "hooks")
# A URL in free text: a scheme, then no whitespace or quote (a trailing bracket or comma is text, not URL).
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>`]+[^\s'\"<>`,.;:)\]}]")
# Shorter known secrets are not searched for in free text: replacing every "ab" would garble the text and
# announce the secret's letters. They are still masked inside URLs and DSNs, which needs no search.
MIN_SEARCHED_LENGTH = 4


def is_secret_name(name: str) -> bool:
    """True for a field or query key that holds a secret: `password`, `auth_password`, `X-Api-Key`, `token`."""
    return bool(_SECRET_NAME.search(name.replace("-", "_")))


def _split_userinfo(netloc: str) -> tuple[str, str | None, str]:
    """(user, password or None, host[:port]) of a URL's netloc."""
    userinfo, at, hostport = netloc.rpartition("@")
    if not at:
        return "", None, netloc
    user, colon, password = userinfo.partition(":")
    return user, (password if colon else None), hostport


def _secret_path_segments(path: str, hide_path: bool) -> list[int]:
    """Indexes of the path segments (of `path.split('/')`) that are secret."""
    parts = path.split("/")
    if hide_path:
        return [i for i, p in enumerate(parts) if p]
    hidden: list[int] = []
    after = False
    for i, p in enumerate(parts):
        if (after and p) or _TOKEN_SEGMENT.match(p):
            hidden.append(i)
        if p.lower() in _SECRET_PATH_AFTER:
            after = True
    return hidden


def mask_url(url: str, *, hide_path: bool = False) -> str:
    """`url` with its secrets replaced by `<secret>`: the userinfo password, values of secret-ish query keys
    (`token`, `key`, `password`, `sig`, ...), and path segments that look like tokens (or, with `hide_path`,
    the whole path and query: Alertmanager's rule for a webhook or Slack URL, which is a secret as a whole).
    Scheme, host and port stay, so an error still says where it went. Text that is not a URL is returned."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.scheme or not (parts.netloc or parts.path):
        return url
    user, password, hostport = _split_userinfo(parts.netloc)
    netloc = parts.netloc
    if password is not None:
        netloc = f"{user}:{SECRET}@{hostport}"
    if hide_path:
        has_more = parts.path.strip("/") or parts.query or parts.fragment
        return _unsplit(url, parts.scheme, netloc, "/" + SECRET if has_more else parts.path, "", "")
    segments = parts.path.split("/")
    for i in _secret_path_segments(parts.path, False):
        segments[i] = SECRET
    query = parts.query
    if query:
        query = "&".join(_mask_query_item(item) for item in query.split("&"))
    return _unsplit(url, parts.scheme, netloc, "/".join(segments), query, parts.fragment)


def _unsplit(original: str, scheme: str, netloc: str, path: str, query: str, fragment: str) -> str:
    """urlunsplit, but keeping an empty authority (`chdb:///dir` stays `chdb:///dir`, not `chdb:/dir`)."""
    head = f"{scheme}://{netloc}" if original[len(scheme):].startswith("://") else f"{scheme}:{netloc}"
    return head + path + (f"?{query}" if query else "") + (f"#{fragment}" if fragment else "")


def _mask_query_item(item: str) -> str:
    key, eq, _ = item.partition("=")
    return f"{key}={SECRET}" if eq and is_secret_name(key) else item


def mask_dsn(dsn: str) -> str:
    """A ClickHouse DSN (`http://user:password@host:8123/db`, `chdb:///dir?password=...`) without its secrets."""
    return mask_url(dsn)


def mask_urls_in_text(text: str) -> str:
    """Every URL found in `text` masked with `mask_url` (structural masking, no list of secrets needed)."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text)


def url_secret_parts(url: str, *, hide_path: bool = False) -> list[str]:
    """The substrings of `url` that are secret (each as written in the URL), for a redactor's list."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    if not parts.scheme:
        return []
    out: list[str] = []
    _, password, _ = _split_userinfo(parts.netloc)
    if password:
        out.append(password)
    if not hide_path:  # with hide_path the path is searched whole: its single words ("hook") are not secrets
        path_parts = parts.path.split("/")
        out += [path_parts[i] for i in _secret_path_segments(parts.path, False)]
    else:
        tail = parts.path + (f"?{parts.query}" if parts.query else "") + (f"#{parts.fragment}" if parts.fragment
                                                                           else "")
        out += [t for t in (tail, parts.path, parts.query) if t.strip("/")]
    for key, value in parse_qsl(parts.query, keep_blank_values=False):
        if is_secret_name(key):
            out.append(value)
    return [s for s in out if s]


class SecretRedactor:
    """Replaces every known secret string in a text by `<secret>`, then masks the URLs left in it.

    Each secret is also searched in its URL-encoded forms (a token in a query string arrives encoded).
    A whole secret URL (a webhook's) is replaced by its masked form, so the text still names the host.
    """

    def __init__(self) -> None:
        self._replacements: dict[str, str] = {}
        self._pattern: re.Pattern[str] | None = None

    def __bool__(self) -> bool:
        return bool(self._replacements)

    def add(self, secret: str, replacement: str = SECRET) -> None:
        """Remember `secret` (and its URL-encoded forms); shorter than MIN_SEARCHED_LENGTH is ignored."""
        if not isinstance(secret, str) or len(secret) < MIN_SEARCHED_LENGTH:
            return
        for form in {secret, quote(secret, safe=""), quote_plus(secret), quote(secret)}:
            if len(form) >= MIN_SEARCHED_LENGTH and self._replacements.get(form) != replacement:
                self._replacements.setdefault(form, replacement)
                self._pattern = None

    def add_url(self, url: str, *, hide_path: bool = False) -> None:
        """Remember the secrets of `url`: the URL as a whole (shown masked) and each secret part of it."""
        parts = url_secret_parts(url, hide_path=hide_path)
        if not parts:
            return
        self.add(url, mask_url(url, hide_path=hide_path))
        for part in parts:
            self.add(part)

    def add_config(self, data: Mapping[str, Any], hide_path_keys: Iterable[str] = ()) -> None:
        """Walk a configuration (a model's `model_dump()`): values under secret-ish names are secrets, and
        every URL's secret parts are; URLs under `hide_path_keys` are secret past their host."""
        hide = set(hide_path_keys)

        def walk(value: Any, name: str) -> None:
            if isinstance(value, Mapping):
                for k, v in value.items():
                    walk(v, str(k))
            elif isinstance(value, list | tuple):
                for v in value:
                    walk(v, name)
            elif isinstance(value, str) and value:
                if is_secret_name(name):
                    self.add(value)
                if "://" in value:
                    self.add_url(value, hide_path=name in hide)

        walk(data, "")

    def redact(self, text: str) -> str:
        """`text` with every known secret replaced and every URL in it masked."""
        if self._replacements:
            if self._pattern is None:
                needles = sorted(self._replacements, key=len, reverse=True)  # a URL before its own parts
                self._pattern = re.compile("|".join(re.escape(n) for n in needles))
            text = self._pattern.sub(lambda m: self._replacements[m.group(0)], text)
        return mask_urls_in_text(text)
