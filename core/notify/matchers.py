"""Alertmanager's label matchers (`name="v"`, `!=`, `=~`, `!~`; regexes fully anchored), parsed from the
`matchers:` string form and from the legacy `match`/`match_re` maps, as Alertmanager's pkg/labels does."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

OPS = ("=~", "!~", "!=", "=")
_MATCHER = re.compile(r'^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$', re.S)


class MatcherError(ValueError):
    """A matcher that does not parse; the message says which and why."""


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str
    _re: re.Pattern[str] | None = field(default=None, compare=False, repr=False)
    # From a legacy `match_re` map: Alertmanager (amtool 0.25) prints its value anchored, `^(?:v)$`.
    legacy_re: bool = field(default=False, compare=False, repr=False)

    @classmethod
    def of(cls, name: str, op: str, value: str) -> Matcher:
        if op not in OPS:
            raise MatcherError(f"unknown operator {op!r} (use =, !=, =~ or !~)")
        pattern = None
        if op in ("=~", "!~"):
            try:
                pattern = re.compile(f"^(?:{value})$", re.S)
            except re.error as exc:
                raise MatcherError(f"invalid regular expression {value!r}: {exc}") from None
        return cls(name, op, value, pattern)

    def matches(self, labels: Mapping[str, str]) -> bool:
        v = labels.get(self.name, "")
        if self.op == "=":
            return v == self.value
        if self.op == "!=":
            return v != self.value
        assert self._re is not None
        found = self._re.match(v) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f"{self.name}{self.op}{_quote(self.value)}"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        body, out, i = text[1:-1], [], 0
        while i < len(body):
            ch = body[i]
            if ch == "\\" and i + 1 < len(body):
                nxt = body[i + 1]
                out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
                i += 2
                continue
            if ch == '"':
                raise MatcherError(f"unescaped quote in {text}")
            out.append(ch)
            i += 1
        return "".join(out)
    if '"' in text:
        raise MatcherError(f"unbalanced quotes in {text}")
    return text


def parse_matcher(text: str) -> Matcher:
    """One matcher such as `severity=~"critical|high"` (quotes optional, as in Alertmanager)."""
    m = _MATCHER.match(text)
    if m is None:
        raise MatcherError(f"bad matcher {text!r}: expected name=\"value\", name!=\"value\", "
                           'name=~"re" or name!~"re"')
    return Matcher.of(m.group(1), m.group(2), _unquote(m.group(3)))


def parse_matchers(text: str) -> list[Matcher]:
    """A `{a="b", c=~"d"}` or `a="b",c=~"d"` list (the form of amtool and silences)."""
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    parts, buf, quoted, escaped = [], [], False, False
    for ch in body:
        if escaped:
            buf.append(ch)
            escaped = False
            continue
        if ch == "\\":
            buf.append(ch)
            escaped = True
            continue
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(buf))
            buf = []
            continue
        buf.append(ch)
    if "".join(buf).strip():
        parts.append("".join(buf))
    return [parse_matcher(p) for p in parts if p.strip()]


def legacy_matchers(match: Mapping[str, str] | None, match_re: Mapping[str, str] | None) -> list[Matcher]:
    out = [Matcher.of(k, "=", str(v)) for k, v in sorted((match or {}).items())]
    out += [dataclasses.replace(Matcher.of(k, "=~", str(v)), legacy_re=True)
            for k, v in sorted((match_re or {}).items())]
    return out


def all_match(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def matchers_str(matchers: Iterable[Matcher]) -> str:
    return "{" + ",".join(str(m) for m in matchers) + "}"
