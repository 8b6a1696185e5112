"""The texts the Alertmanager-style integrations send when their config leaves a text out, and the caps the
services put on them.

Each kind's module keeps its defaults in one `DEFAULTS` table, `key -> (Alertmanager's default template
name, the renderer used meanwhile)`: the template names are what Alertmanager's default.tmpl calls them,
so when Go template files are supported each default can become `{{ template "<name>" . }}` in one place.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

from core.notify.notification import Notification
from core.notify.receiver_kinds import KindConfig
from core.notify.text_template import render_template

Renderer = Callable[[Notification], str]
Defaults = Mapping[str, tuple[str, Renderer]]


def subject(n: Notification) -> str:
    """Alertmanager's `__subject`: `[FIRING:2] <group label values> (<the other common label values>)`,
    values in label-name order; `[RESOLVED] ...` when nothing fires."""
    head = f"[FIRING:{len(n.firing())}]" if n.status == "firing" else "[RESOLVED]"
    group = " ".join(v for _, v in sorted(n.group_labels.items()))
    common = n.common_labels
    rest = " ".join(v for k, v in sorted(common.items()) if k not in n.group_labels)
    return f"{head} {group}" + (f" ({rest})" if len(common) > len(n.group_labels) else "")


def _alert_block(lines: list[str], n: Notification, state: str) -> None:
    for a in (n.firing() if state == "firing" else n.resolved()):
        lines.append("Labels:")
        lines += [f" - {k} = {v}" for k, v in sorted(a.labels.items())]
        lines.append("Annotations:")
        lines += [f" - {k} = {v}" for k, v in sorted(a.annotations.items())]
        lines.append(f"Source: {a.generator_url}")
        lines.append("")


def alert_list(n: Notification) -> str:
    """Alertmanager's `__text_alert_list` under "Alerts Firing:" and "Alerts Resolved:" headings: each
    alert's labels, annotations and source, the body most of its default templates use."""
    lines: list[str] = []
    for state, heading in (("firing", "Alerts Firing:"), ("resolved", "Alerts Resolved:")):
        if any(a.state == state for a in n.alerts):
            lines.append(heading)
            _alert_block(lines, n, state)
    return "\n".join(lines).strip()


def annotated_alert_list(n: Notification) -> str:
    """The common annotations' values, then the alert list: the body of Alertmanager's Opsgenie,
    VictorOps, Pushover, SNS, Webex and WeChat default templates."""
    head = " ".join(v for _, v in sorted(n.common_annotations.items()))
    return f"{head}\n{alert_list(n)}" if head else alert_list(n)


def external_url(n: Notification) -> str:
    return n.external_url


def text(cfg: KindConfig, defaults: Defaults, key: str, n: Notification) -> str:
    """The config's template for `key` rendered, or the kind's default text when the key is unset."""
    value = cfg.get(key)
    if value is None:
        return defaults[key][1](n) if key in defaults else ""
    return render_template(str(value), n.template_data())


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
