"""The texts the Alertmanager-style integrations send, and the caps the services put on them.

Every text key of a kind is a notification template (core/notify/templates.py), rendered with the
config's `templates:` files on Alertmanager's full template data; a key the config leaves out defaults to
Alertmanager's default template name for it (`{{ template "opsgenie.default.message" . }}`...), one table
for every kind: core/notify/default_templates.py's `DEFAULT_FIELDS`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from watchkeeper.core.notify.default_templates import DEFAULT_FIELDS
from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.receiver_kinds import KindConfig
from watchkeeper.core.notify.templates import NotifyTemplates, default_templates, notification_data


class KindTexts:
    """One notification's texts for one integration: `texts("message")` is the config's template for the
    key, or the kind's default, rendered on the notification's data (built once per send)."""

    def __init__(self, kind: str, cfg: KindConfig, n: Notification, templates: NotifyTemplates | None) -> None:
        self.cfg, self.defaults = cfg, DEFAULT_FIELDS[kind]
        self.templates = templates or default_templates()
        self.data = notification_data(n)

    def __call__(self, key: str, *, html: bool = False) -> str:
        """`html`: escape as html/template does (Alertmanager's TmplHTML: Telegram's HTML parse mode,
        Pushover's `html`)."""
        value = self.cfg.get(key)
        return self.render(self.defaults.get(key, "") if value is None else str(value), html=html)

    def render(self, text: Any, *, html: bool = False) -> str:
        """Any other templated value of the config (a detail, a responder's name, a routing key...)."""
        return self.templates.render(str(text), self.data, html_body=html)


def truncate(value: str, limit: int) -> str:
    """At most `limit` characters, ending in "…" when cut (Alertmanager's TruncateInRunes)."""
    return value if len(value) <= limit else value[:limit - 1] + "…"


def truncate_bytes(value: str, limit: int) -> str:
    """At most `limit` UTF-8 bytes, cut on a character boundary, ending in "…" when cut."""
    raw = value.encode()
    if len(raw) <= limit:
        return value
    return raw[:limit - len("…".encode())].decode("utf-8", "ignore") + "…"


def group_hash(n: Notification) -> str:
    """The group key's SHA-256, as Alertmanager's key.Hash(): the id a service deduplicates a group by."""
    return hashlib.sha256(n.group_key.encode()).hexdigest()
