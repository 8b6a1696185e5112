"""Alertmanager's notification templates: the `templates:` files' `{{ define }}` blocks, Alertmanager's
default template names (core/notify/default_templates.py), the data Alertmanager passes to them
(`.Receiver`, `.Status`, `.Alerts` with `.Firing`/`.Resolved`, `.GroupLabels`, `.CommonLabels`,
`.CommonAnnotations`, `.ExternalURL`; per alert `.Labels`, `.Annotations`, `.StartsAt`, `.EndsAt`,
`.GeneratorURL`, `.Fingerprint`; `.SortedPairs`, `.Names`, `.Values`, `.Remove` on label sets) and its
template functions. Everything is parsed when the configuration loads, so a typo is an error naming the
file and line then, never a failed notification later."""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from watchkeeper.core.notify.go_time import GoDuration, GoTime, go_format, go_tz, parse_rfc3339, zero_time
from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.promql.re2 import compile_re2
from watchkeeper.core.rules.templates import (
    FUNCS,
    Nodes,
    TemplateError,
    execute,
    go_str,
    humanize_duration,
    parse_with_defines,
    root_fields,
    template_calls,
)

__all__ = [
    "KV",
    "Alert",
    "Alerts",
    "Data",
    "NotifyTemplates",
    "TemplateError",
    "TemplateFileError",
    "data_from_json",
    "default_templates",
    "load_templates",
    "notification_data",
]


class TemplateFileError(ValueError):
    """A `templates:` file that does not parse: the file, the line and what is wrong."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")
        self.path, self.line, self.message = path, line, message


# ------------------------------------------------------------------------------------ template data


@dataclass(frozen=True)
class Pair:
    Name: str
    Value: str
    GO_FIELDS = ("Name", "Value")

    def go_string(self) -> str:
        return "{" + f"{self.Name} {self.Value}" + "}"


class Pairs(list[Pair]):
    GO_METHODS = ("Names", "Values")

    def Names(self) -> list[str]:  # Go's method names, as templates call them
        return [p.Name for p in self]

    def Values(self) -> list[str]:
        return [p.Value for p in self]


class KV(dict[str, str]):
    """A label or annotation set (Alertmanager's template.KV): a map with methods; `alertname` sorts first
    in SortedPairs, Names and Values, as Alertmanager's."""

    GO_METHODS = ("SortedPairs", "Names", "Values", "Remove")

    def SortedPairs(self) -> Pairs:
        keys = sorted(k for k in self if k != "alertname")
        if "alertname" in self:
            keys.insert(0, "alertname")
        return Pairs(Pair(k, self[k]) for k in keys)

    def Names(self) -> list[str]:
        return self.SortedPairs().Names()

    def Values(self) -> list[str]:
        return self.SortedPairs().Values()

    def Remove(self, keys: Iterable[str]) -> KV:
        drop = set(keys)
        return KV({k: v for k, v in self.items() if k not in drop})


@dataclass(frozen=True)
class Alert:
    Status: str
    Labels: KV
    Annotations: KV
    StartsAt: GoTime
    EndsAt: GoTime
    GeneratorURL: str
    Fingerprint: str
    GO_FIELDS = ("Status", "Labels", "Annotations", "StartsAt", "EndsAt", "GeneratorURL", "Fingerprint")

    def go_string(self) -> str:
        return "{" + " ".join(go_str(getattr(self, f)) for f in self.GO_FIELDS) + "}"


class Alerts(list[Alert]):
    GO_METHODS = ("Firing", "Resolved")

    def Firing(self) -> Alerts:
        return Alerts(a for a in self if a.Status == "firing")

    def Resolved(self) -> Alerts:
        return Alerts(a for a in self if a.Status == "resolved")


@dataclass(frozen=True)
class Data:
    """What every notification template is executed on (Alertmanager's template.Data)."""

    Receiver: str
    Status: str
    Alerts: Alerts
    GroupLabels: KV
    CommonLabels: KV
    CommonAnnotations: KV
    ExternalURL: str
    GO_FIELDS = ("Receiver", "Status", "Alerts", "GroupLabels", "CommonLabels", "CommonAnnotations", "ExternalURL")
    now: datetime = field(compare=False)  # what `since` measures from: passed in, the core reads no clock

    def go_string(self) -> str:
        return "{" + " ".join(go_str(getattr(self, f)) for f in self.GO_FIELDS) + "}"


def data_from_json(payload: Mapping[str, Any], now: datetime) -> Data:
    """Template data from Alertmanager's webhook message (the shape `amtool template render
    --template.data` reads too); `now` is the time `since` measures from (the notification's time)."""
    alerts = Alerts(
        Alert(Status=str(a.get("status", "")), Labels=KV(a.get("labels") or {}),
              Annotations=KV(a.get("annotations") or {}),
              StartsAt=parse_rfc3339(a["startsAt"]) if a.get("startsAt") else zero_time(),
              EndsAt=parse_rfc3339(a["endsAt"]) if a.get("endsAt") else zero_time(),
              GeneratorURL=str(a.get("generatorURL", "")), Fingerprint=str(a.get("fingerprint", "")))
        for a in payload.get("alerts") or [])
    return Data(Receiver=str(payload.get("receiver", "")), Status=str(payload.get("status", "")), Alerts=alerts,
                GroupLabels=KV(payload.get("groupLabels") or {}), CommonLabels=KV(payload.get("commonLabels") or {}),
                CommonAnnotations=KV(payload.get("commonAnnotations") or {}),
                ExternalURL=str(payload.get("externalURL", "")), now=now)


def notification_data(n: Notification) -> Data:
    """The data a notification's templates see: its webhook message (what Alertmanager's templates get for
    the same group), with the flush time as `since`'s now."""
    return data_from_json(n.webhook_payload(), datetime.fromtimestamp(n.flush_time, UTC))


# ---------------------------------------------------------------------------------------- functions


class SafeHtml(str):
    """html/template's HTML type: what `safeHtml` returns is not escaped in an HTML body."""


_MID_LETTER = "'.:’·‧"  # UAX #29 MidLetter/MidNumLet: no word break between two letters


def _title(text: Any) -> str:
    """Alertmanager's `title` (golang.org/x/text cases.Title): in each word the first cased letter is title-
    cased and the rest lower-cased (`AA` -> `Aa`, `3AM` -> `3Am`, `foo_BAR` -> `Foo_bar`, `don't` ->
    `Don't`, `ß` -> `Ss`). Words break as Unicode's word rules have it, approximately: letters, digits, marks
    and `_` join; `'`, `.` and `:` join a word to a following letter, digit or `_` (`A0'a`, `A.1b`: found
    by the amtool comparison); anything else breaks. (Prometheus' `title` differs: it
    leaves the rest of the word alone.)"""
    s = str(text)
    out: list[str] = []
    in_word = titled = False
    def word_char(c: str) -> bool:
        return c.isalnum() or c == "_" or unicodedata.category(c).startswith("M")

    for i, ch in enumerate(s):
        joins = word_char(ch) or (ch in _MID_LETTER and in_word and i + 1 < len(s) and word_char(s[i + 1]))
        if not joins:
            in_word = titled = False
            out.append(ch)
            continue
        in_word = True
        if not titled and ch.lower() != ch.upper():
            out.append(ch.title())
            titled = True
        else:
            out.append(ch.lower() if titled else ch)
    return "".join(out)


def _to_upper(text: Any) -> str:
    """strings.ToUpper: rune by rune, so a letter without a one-rune capital stays (`ß`, `ﬁ`)."""
    return "".join(u if len(u := c.upper()) == 1 else c for c in str(text))


def _to_lower(text: Any) -> str:
    """strings.ToLower: rune by rune (`İ` -> `i`)."""
    return "".join(c.lower()[0] for c in str(text))


def _join(sep: str, items: Sequence[Any]) -> str:
    return str(sep).join(str(x) for x in items)


def _date(layout: str, t: datetime) -> str:
    return go_format(t, str(layout))


def _since(t: datetime) -> GoDuration:
    raise TemplateError("since needs the notification time")  # replaced per render


def _humanize_duration(x: Any) -> str:
    try:
        return humanize_duration(float(x))
    except (TypeError, ValueError):
        raise TemplateError(f"can't convert {go_str(x)!r} to a duration") from None


def _re_replace_all(pattern: str, repl: str, text: str) -> str:
    from watchkeeper.core.promql.re2 import go_expand
    return compile_re2(str(pattern)).sub(lambda m: go_expand(str(repl), m), str(text))


# Go's builtins (from core/rules/templates.py) and Alertmanager's template functions (template.go,
# documented in "Notification template reference").
AM_FUNCS: dict[str, Callable[..., Any]] = {
    **{k: FUNCS[k] for k in ("and", "or", "not", "len", "index", "print", "println", "printf", "eq", "ne", "lt",
                             "le", "gt", "ge", "html", "urlquery", "slice", "js")},
    "toUpper": _to_upper,
    "toLower": _to_lower,
    "title": _title,
    "trimSpace": lambda s: str(s).strip(" \t\n\r\v\f"),
    "join": _join,
    "match": lambda pattern, text: compile_re2(str(pattern)).search(str(text)) is not None,
    "safeHtml": lambda s: SafeHtml(s),
    "reReplaceAll": _re_replace_all,
    "stringSlice": lambda *s: [str(x) for x in s],
    "date": _date,
    "tz": go_tz,
    "since": _since,
    "humanizeDuration": _humanize_duration,
}


_GO_HTML = {"<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&#34;", "'": "&#39;", "+": "&#43;", "\0": "\ufffd"}
_GO_HTML_RE = re.compile("[<>&\"'+\0]")
# An open tag up to the end of the output so far, ending inside a quoted attribute value.
_OPEN_ATTR = re.compile(r"<[A-Za-z][^\s/>]*(?:\s+[^\s=>\"']+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>\"']+))?)*"
                        r"\s+([^\s=>\"']+)\s*=\s*([\"'])([^\"']*)$")
_URL_ATTRS = {"action", "archive", "background", "cite", "classid", "codebase", "data", "formaction", "href",
              "icon", "longdesc", "manifest", "poster", "profile", "src", "usemap", "xmlns"}
_URL_KEEP = frozenset(b"!#$&*+,/:;=?@[]-._~%" + b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_QUERY_KEEP = frozenset(b"-._~abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def _percent(text: str, keep: frozenset[int]) -> str:
    """html/template's URL processing: bytes outside `keep` as %xx (lower-case hex, as Go writes them)."""
    return "".join(chr(b) if b in keep else f"%{b:02x}" for b in text.encode())


def _url_attr(name: str) -> bool:
    """html/template's attrType for URLs: the known URL attributes, and any name with url, uri or src."""
    name = name.lower().removeprefix("data-").removeprefix("xmlns:")
    return name in _URL_ATTRS or any(part in name for part in ("url", "uri", "src"))


def _html_attr_escape(text: str) -> str:
    return _GO_HTML_RE.sub(lambda m: _GO_HTML[m.group(0)], text)


def html_escape(value: Any, out: Sequence[str] = (), last_func: str = "") -> str:
    """html/template's escaping of a value, for the place it lands in the output so far: HTML text and
    quoted attribute values are HTML-escaped; in a URL attribute (href, src...) the value is first
    filtered (a scheme other than http, https or mailto at the URL's start becomes `#ZgotmplZ`) and
    percent-encoded (reserved characters kept before the query, all but unreserved ones after `?` or
    `#`). `safeHtml` values pass unchanged in text; a pipeline that ends in `html` (in HTML) or `urlquery`
    (in a URL) was escaped by it, and is not again. Script and style contexts are not modelled."""
    text = go_str(value)
    tail = ""
    for chunk in reversed(out):  # back to the last `<`: the tag the value may be inside
        tail = chunk + tail
        if "<" in chunk:
            break
    m = _OPEN_ATTR.search(tail[tail.rfind("<"):]) if "<" in tail else None
    if m is None:
        return str(value) if isinstance(value, SafeHtml) or last_func == "html" else _html_attr_escape(text)
    if last_func == "html":
        return text
    if _url_attr(m.group(1)) and last_func != "urlquery":
        before = m.group(3)
        if not before:
            scheme = re.match(r"([^/?#:]*):", text)
            if scheme and scheme.group(1).lower() not in ("http", "https", "mailto"):
                return "#ZgotmplZ"
        text = _percent(text, _QUERY_KEEP if ("?" in before or "#" in before) else _URL_KEEP)
    return _html_attr_escape(text)


# ---------------------------------------------------------------------------------------- templates


@lru_cache(maxsize=4096)
def _parse_field(text: str) -> tuple[Nodes, dict[str, Nodes]]:
    return parse_with_defines(text, AM_FUNCS)


@dataclass(frozen=True)
class NotifyTemplates:
    """The named templates a configuration's receivers can call: Alertmanager's default names first, then
    each `templates:` file in order (a later definition of a name replaces an earlier one, as in
    Alertmanager, so a file can redefine `slack.default.title`)."""

    defines: Mapping[str, Nodes]
    files: tuple[str, ...] = ()

    def check(self, text: str) -> None:
        """Parse a receiver field's template and check that every template it calls, directly or through
        others, is defined: what would fail at every delivery fails now."""
        nodes, local = _parse_field(text)
        for name in sorted(root_fields(nodes)):
            if name not in Data.GO_FIELDS:
                raise TemplateError(f"can't evaluate field {name} in type *template.Data (it has "
                                    f"{', '.join(Data.GO_FIELDS)})")
        seen: set[str] = set()
        todo = template_calls(nodes) | {c for body in local.values() for c in template_calls(body)}
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            body = local.get(name, self.defines.get(name))
            if body is None:
                raise TemplateError(f'template "{name}" not defined')
            todo |= template_calls(body)

    def render(self, text: str, data: Data, html_body: bool = False) -> str:
        """Execute a receiver field's template on `data`; `html_body` escapes as html/template does
        (Alertmanager renders email `html` that way)."""
        if "{{" not in text:
            return text
        nodes, local = _parse_field(text)
        funcs = dict(AM_FUNCS)
        funcs["since"] = lambda t: GoDuration((data.now - t).total_seconds())
        return execute(nodes, data, funcs, {**self.defines, **local}, html_escape if html_body else None)


def _read(path: str, text: str, defines: dict[str, Nodes]) -> None:
    try:
        _, found = parse_with_defines(text, AM_FUNCS)
    except TemplateError as exc:
        raise TemplateFileError(path, exc.line, exc.message) from None
    defines.update(found)


@lru_cache(maxsize=1)
def default_templates() -> NotifyTemplates:
    """Alertmanager's default template names, as Watchkeeper defines them."""
    from watchkeeper.core.notify.default_templates import DEFAULT_TEMPLATES

    defines: dict[str, Nodes] = {}
    _read("core/notify/default_templates.py", DEFAULT_TEMPLATES, defines)
    return NotifyTemplates(defines)


def load_templates(paths: Sequence[str]) -> NotifyTemplates:
    """The default names plus the named templates of each file (already glob-expanded, in order)."""
    defines = dict(default_templates().defines)
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateFileError(path, None, f"cannot read template file: {exc}") from None
        _read(os.path.normpath(path), text, defines)
    return NotifyTemplates(defines, tuple(paths))
