"""Go text/template as Prometheus renders rule labels and annotations: `{{ $value }}`, `{{ $labels.x }}`,
`{{ .Value }}`, `{{ .Labels.x }}`, `{{ $externalLabels.x }}`, `{{ $externalURL }}`; the actions `if` /
`else if` / `else`, `with` (and `else with`), `range` (over query results, maps and lists, with
`$i, $x :=`), variables (`$x := ...`, `$x = ...`), pipes, parentheses, `{{-`/`-}}` trimming and
comments; Go's builtins (`and or not len index print printf println eq ne lt le gt ge html urlquery`)
and Prometheus' template functions (template/template.go: `query`, `first`, `label`, `value`,
`strvalue`, `args`, `reReplaceAll`, `safeHtml`, `match`, `title`, `toUpper`, `toLower`, `graphLink`,
`tableLink`, `sortByLabel`, `stripPort`, `stripDomain`, `humanize*`, `humanizeTimestamp`, `toTime`,
`pathPrefix`, `externalURL`, `parseDuration`). `query` runs against the engine's store at the alert's
evaluation time. Parsing (syntax, unknown functions, undefined variables) happens at load time;
`define`/`template`/`block` are refused there."""

from __future__ import annotations

import ast
import ipaddress
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import quote_plus, urlsplit

from watchkeeper.core.promql.re2 import compile_re2, go_expand
from watchkeeper.core.promql.series_notation import parse_duration
from watchkeeper.core.slo.go_format import go_float


class TemplateError(ValueError):
    """`line` is the 1-based line of the action in the template text, where the parser knows it."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message, self.line = message, line

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass(frozen=True)
class QuerySample:
    """One element of a `query` result, as Prometheus' template `sample`: `.Labels` and `.Value`."""

    Labels: Mapping[str, str]  # the field names templates use
    Value: float


QueryFunc = Callable[[str], list[QuerySample]]


@dataclass(frozen=True)
class TemplateData:
    labels: Mapping[str, str]
    value: float
    external_labels: Mapping[str, str]
    external_url: str = ""
    query: QueryFunc | None = None  # the engine's store at the alert's evaluation time


def go_g4(v: float) -> str:
    """Go's `%.4g`."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return f"{v:.4g}"


_SI_UP = ("k", "M", "G", "T", "P", "E", "Z", "Y")
_SI_DOWN = ("m", "u", "n", "p", "f", "a", "z", "y")
_IEC_UP = ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi")


def _scale_up(v: float, base: int, prefixes: tuple[str, ...]) -> tuple[float, str]:
    """`v` divided by `base` while it is at least `base` (at most len(prefixes) times), and the prefix reached."""
    prefix = ""
    for p in prefixes:
        if abs(v) < base:
            break
        prefix, v = p, v / base
    return v, prefix


def _scale_down(v: float) -> tuple[float, str]:
    """`v` multiplied by 1000 while below 1 (down to yocto), and the SI prefix reached."""
    prefix = ""
    for p in _SI_DOWN:
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return v, prefix


def humanize(v: float) -> str:
    if v == 0 or math.isnan(v) or math.isinf(v):
        return go_g4(v)
    scaled, prefix = _scale_up(v, 1000, _SI_UP) if abs(v) >= 1 else _scale_down(v)
    return go_g4(scaled) + prefix


def humanize1024(v: float) -> str:
    if abs(v) <= 1 or math.isnan(v) or math.isinf(v):
        return go_g4(v)
    scaled, prefix = _scale_up(v, 1024, _IEC_UP)
    return go_g4(scaled) + prefix


def humanize_duration(v: float) -> str:
    if math.isnan(v) or math.isinf(v):
        return go_g4(v)
    if v == 0:
        return go_g4(v) + "s"
    if abs(v) >= 1:
        sign = ""
        if v < 0:
            sign, v = "-", -v
        d = int(v)
        seconds, minutes, hours, days = d % 60, (d // 60) % 60, (d // 3600) % 24, d // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{go_g4(v)}s"
    scaled, prefix = _scale_down(v)
    return f"{go_g4(scaled)}{prefix}s"


def _to_float(x: Any) -> float:
    if isinstance(x, str):
        try:
            return float(x)
        except ValueError:
            raise TemplateError(f"cannot convert {x!r} to a number") from None
    return float(x)


def _printf(fmt: str, *args: Any) -> str:
    out = []
    conv = iter(args)

    def one(m: re.Match[str]) -> str:
        spec = m.group(0)
        if spec == "%%":
            return "%"
        arg = next(conv, None)
        kind = spec[-1]
        if kind == "v":
            return go_str(arg)
        if kind in "gGeEf":
            f = float(arg)  # type: ignore[arg-type]
            return "NaN" if math.isnan(f) else ("+Inf" if f == math.inf else ("-Inf" if f == -math.inf else spec % f))
        if kind == "d":
            return spec % int(arg)  # type: ignore[arg-type]
        if kind == "s":
            return spec % go_str(arg)
        if kind == "q":
            return '"' + go_str(arg).replace("\\", "\\\\").replace('"', '\\"') + '"'
        raise TemplateError(f"printf verb {spec} is not supported")

    out.append(re.sub(r"%[-+ #0]*\d*(?:\.\d+)?[a-zA-Z%]", one, fmt))
    return "".join(out)


def go_str(x: Any) -> str:
    """fmt.Sprint of one value; a value standing for a Go type prints itself (`go_string`)."""
    go_string = getattr(x, "go_string", None)
    if callable(go_string):
        return str(go_string())
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, float):
        return go_float(x)
    if isinstance(x, datetime):
        return _go_time_str(x)
    if isinstance(x, Mapping):
        return "map[" + " ".join(f"{go_str(k)}:{go_str(v)}" for k, v in sorted(x.items())) + "]"
    if isinstance(x, list | tuple):
        return "[" + " ".join(go_str(v) for v in x) + "]"
    return "" if x is None else str(x)


def _go_title(text: str) -> str:
    """strings.Title: the first letter of each word upper-cased, the rest left as it is."""
    out, prev = [], " "
    for ch in text:
        out.append(ch.upper() if not (prev.isalnum() or prev == "_") else ch)
        prev = ch
    return "".join(out)


def _split_host_port(host_port: str) -> tuple[str, str] | None:
    """net.SplitHostPort, or None where Go returns an error."""
    if host_port.startswith("["):
        end = host_port.find("]")
        if end < 0 or not host_port.startswith(":", end + 1):
            return None
        return host_port[1:end], host_port[end + 2:]
    if host_port.count(":") != 1:
        return None
    host, port = host_port.split(":")
    return host, port


def _strip_port(host_port: str) -> str:
    split = _split_host_port(host_port)
    return host_port if split is None else split[0]


def _strip_domain(host_port: str) -> str:
    split = _split_host_port(host_port)
    host, port = split if split is not None else (host_port, "")
    try:
        ipaddress.ip_address(host)
        return host_port
    except ValueError:
        pass
    host = host.split(".")[0]
    if port:
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return host


def _to_time(x: Any) -> datetime:
    """floatToTime: Unix seconds to a UTC time, at Prometheus' millisecond resolution."""
    v = _to_float(x)
    if math.isnan(v) or math.isinf(v) or abs(v * 1e9) >= 2.0**63:
        raise TemplateError(f"{v} cannot be represented as a nanoseconds timestamp since it overflows int64")
    ms = int(v * 1e9) // 1_000_000 if v >= 0 else -((-int(v * 1e9)) // 1_000_000)
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def _go_time_str(t: datetime) -> str:
    """time.Time.String(): `2006-01-02 15:04:05.999999999 +0000 UTC` (the zone's offset and name)."""
    frac = f".{t.microsecond:06d}".rstrip("0").rstrip(".") if t.microsecond else ""
    offset = t.strftime("%z") or "+0000"
    return f"{t.year:04d}-" + t.strftime("%m-%d %H:%M:%S") + frac + f" {offset} {t.tzname() or 'UTC'}"


def _humanize_timestamp(x: Any) -> str:
    v = _to_float(x)
    if math.isnan(v) or math.isinf(v):
        return go_g4(v)
    return _go_time_str(_to_time(v))


def _re_replace_all(pattern: str, repl: str, text: str) -> str:
    regex = compile_re2(pattern)
    return regex.sub(lambda m: go_expand(repl, m), text)


def _first(v: Any) -> Any:
    if not v:
        raise TemplateError("first() called on vector with no elements")
    return v[0]


def _sample(s: Any, fn: str) -> QuerySample:
    if not isinstance(s, QuerySample):
        raise TemplateError(f"{fn}() needs a query result sample, got {go_str(s)!r}")
    return s


def _truth(v: Any) -> bool:
    """text/template's truth: false, 0, nil and empty strings, maps and lists are false."""
    if isinstance(v, float):
        return v != 0
    return bool(v)


def _go_print(*args: Any) -> str:
    """fmt.Sprint: a space between two operands when neither is a string."""
    out: list[str] = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_str(a))
    return "".join(out)


def _kind(v: Any) -> str:
    """text/template's basicKind, for the types templates meet."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    return "string" if isinstance(v, str) else "other"


def _compare(op: str) -> Callable[..., bool]:
    """eq, ne, lt, le, gt, ge: values of different kinds (a float and an int literal too) do not compare."""
    def compare(a: Any, *rest: Any) -> bool:
        if not rest:
            raise TemplateError(f"missing argument for comparison {op}")
        for b in rest:
            if _kind(a) != _kind(b):
                raise TemplateError("incompatible types for comparison")
        if op == "eq":
            return any(a == b for b in rest)
        b = rest[0]
        if op != "ne" and _kind(a) in ("bool", "other"):
            raise TemplateError("invalid type for comparison")
        return {"ne": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]
    return compare


def _index(item: Any, *keys: Any) -> Any:
    for k in keys:
        if isinstance(item, Mapping):
            item = item.get(k, "")
        else:
            try:
                item = item[int(k)]
            except (IndexError, TypeError, ValueError):
                raise TemplateError(f"index of {go_str(item)!r}: {k!r} out of range") from None
    return item


def _len(item: Any) -> int:
    """Go's `len`: a string's length is its UTF-8 bytes (`len "é"` is 2)."""
    return len(item.encode("utf-8", "surrogatepass")) if isinstance(item, str) else len(item)


def _slice(item: Any, *indices: Any) -> Any:
    """Go's `slice`: item[i:], item[i:j] (strings and lists), item[i:j:k] (lists). A string is sliced by UTF-8
    bytes, as Go does; a rune cut in two becomes U+FFFD, which is what Go's JSON encoder sends for the invalid
    byte in a notification (found by the amtool comparison: `slice "é" 0 1`)."""
    if not isinstance(item, str | list | tuple):
        raise TemplateError(f"can't slice item of type {type(item).__name__}")
    if len(indices) > 3 or (len(indices) == 3 and isinstance(item, str)):
        raise TemplateError("too many slice indexes")
    seq: Any = item.encode("utf-8", "surrogatepass") if isinstance(item, str) else item
    idx = [int(i) for i in indices]
    bound = len(seq) if len(idx) < 3 else idx[2]
    if any(i < 0 or i > len(seq) for i in idx) or idx != sorted(idx) or (idx and idx[-1] > bound):
        raise TemplateError(f"invalid slice index: {idx}")
    out = seq[idx[0]:idx[1]] if len(idx) >= 2 else (seq[idx[0]:] if idx else seq)
    return out.decode("utf-8", "replace") if isinstance(item, str) else out


def _js(*args: Any) -> str:
    """Go's `js` (JSEscapeString of the printed arguments)."""
    out = []
    for ch in _go_print(*args):
        if ch in "\\'\"":
            out.append("\\" + ch)
        elif ch in "<>&=" or ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _and(*args: Any) -> Any:
    for a in args:
        if not _truth(a):
            return a
    return args[-1]


def _or(*args: Any) -> Any:
    for a in args:
        if _truth(a):
            return a
    return args[-1]


# Go's text/template builtins, then Prometheus' template functions (template/template.go). Functions
# that need the rule's context (query, pathPrefix, externalURL) are bound per render in _Renderer.
FUNCS: dict[str, Callable[..., Any]] = {
    "and": _and, "or": _or, "not": lambda a: not _truth(a), "len": _len, "index": _index, "print": _go_print,
    "println": lambda *a: " ".join(go_str(x) for x in a) + "\n", "printf": _printf,
    "eq": _compare("eq"), "ne": _compare("ne"), "lt": _compare("lt"), "le": _compare("le"), "gt": _compare("gt"),
    "ge": _compare("ge"), "html": lambda *a: _html_escape_string(_go_print(*a)),
    "urlquery": lambda s: quote_plus(go_str(s)),
    "slice": _slice, "js": _js,
    "first": _first,
    "label": lambda name, s: _sample(s, "label").Labels.get(name, ""),
    "value": lambda s: _sample(s, "value").Value,
    "strvalue": lambda s: _sample(s, "strvalue").Labels.get("__value__", ""),
    "args": lambda *a: {f"arg{i}": x for i, x in enumerate(a)},
    "reReplaceAll": _re_replace_all,
    "safeHtml": lambda s: str(s),
    "match": lambda pattern, text: compile_re2(pattern).search(text) is not None,
    "title": lambda s: _go_title(str(s)),
    "toUpper": lambda s: str(s).upper(),
    "toLower": lambda s: str(s).lower(),
    "graphLink": lambda e: f"/graph?g0.expr={quote_plus(str(e))}&g0.tab=0",
    "tableLink": lambda e: f"/graph?g0.expr={quote_plus(str(e))}&g0.tab=1",
    "sortByLabel": lambda name, v: sorted(v, key=lambda s: _sample(s, "sortByLabel").Labels.get(name, "")),
    "stripPort": lambda s: _strip_port(str(s)),
    "stripDomain": lambda s: _strip_domain(str(s)),
    "humanize": lambda x: humanize(_to_float(x)),
    "humanize1024": lambda x: humanize1024(_to_float(x)),
    "humanizeDuration": lambda x: humanize_duration(_to_float(x)),
    "humanizePercentage": lambda x: go_g4(_to_float(x) * 100) + "%",
    "humanizeTimestamp": _humanize_timestamp,
    "toTime": _to_time,
    "parseDuration": lambda d: parse_duration(str(d)),
    "query": lambda q: [],  # replaced per render
    "pathPrefix": lambda: "",  # replaced per render
    "externalURL": lambda: "",  # replaced per render
}  # fmt: skip


# ------------------------------------------------------------------------------------------- parsing

_DELIMS = re.compile(r"{{(-\s)?(.*?)(\s-)?}}", re.S)
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\]|\\.)+')
  | (?P<decl>:=)
  | (?P<assign>=)
  | (?P<punct>[|(,])
  | (?P<close>\)(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
  | (?P<num>[+-]?(?:0[xX][0-9a-fA-F_]+|(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
""", re.X)
_KEYWORDS = {"if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"}


@dataclass
class _Operand:
    kind: str  # lit | var | dot | func | sub
    value: Any = None
    fields: tuple[str, ...] = ()


@dataclass
class _Pipeline:
    decl: list[str]
    assign: bool
    cmds: list[list[_Operand]]


@dataclass
class _Node:
    kind: str  # text | action | if | range | with | template (text: the name; pipe: its data, or None)
    text: str = ""
    pipe: _Pipeline | None = None
    branches: list[tuple[_Pipeline, list[_Node]]] = field(default_factory=list)
    else_body: list[_Node] = field(default_factory=list)


def _lex(body: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(body):
        m = _TOKEN.match(body, pos)
        if m is None:
            raise TemplateError(f"unexpected {body[pos:pos + 10]!r} in action")
        kind = m.lastgroup or ""
        text = m.group(0)
        if kind != "ws":
            out.append((kind, text))
        pos = m.end()
    return out


PROMETHEUS_VARS = frozenset({"$", "$labels", "$externalLabels", "$externalURL", "$value"})


class _Parser:
    """text/template's grammar; undefined variables and functions are errors. With `defines`, the
    template may hold `{{ define }}` blocks (kept in `self.defines`), `{{ template }}` and `{{ block }}`, as
    Alertmanager's notification templates do; Prometheus' rule templates refuse them."""

    def __init__(self, text: str, funcs: Mapping[str, Any] | None = None,
                 variables: frozenset[str] = PROMETHEUS_VARS, defines: bool = False) -> None:
        self.items = self._split(text)
        self.pos = 0
        self.funcs = FUNCS if funcs is None else funcs
        self.scopes: list[set[str]] = [set(variables)]
        self.allow_defines = defines
        self.ranges = 0  # how many {{range}} bodies the parser is in: {{break}} and {{continue}} need one
        self.defines: dict[str, list[_Node]] = {}
        self.line = 1

    @staticmethod
    def _split(text: str) -> list[tuple[str, Any, int]]:
        """(kind, text or tokens, line) for each literal text and action, as text/template's lexer."""
        items: list[tuple[str, Any, int]] = []
        pos = 0
        trim_next = False
        for m in _DELIMS.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            literal = text[pos:m.start()]
            if trim_next:
                literal = literal.lstrip()
            if m.group(1):
                literal = literal.rstrip()
            if "{{" in literal:
                raise TemplateError("unclosed action", text.count("\n", 0, pos + literal.index("{{")) + 1)
            items.append(("text", literal, line))
            body = m.group(2).strip()
            if not (body.startswith("/*") and body.endswith("*/")):
                try:
                    items.append(("action", _lex(body), line))
                except TemplateError as exc:
                    raise TemplateError(exc.message, line) from None
            trim_next = bool(m.group(3))
            pos = m.end()
        tail = text[pos:]
        if "{{" in tail:
            raise TemplateError("unclosed action", text.count("\n", 0, pos + tail.index("{{")) + 1)
        items.append(("text", tail.lstrip() if trim_next else tail, text.count("\n", 0, pos) + 1))
        return items

    def parse(self) -> list[_Node]:
        nodes, stop = self.body(top=True)
        if stop is not None:
            raise TemplateError(f"unexpected {{{{{stop[0][1]}}}}}", self.line)
        return nodes

    def body(self, top: bool = False) -> tuple[list[_Node], list[tuple[str, str]] | None]:
        """Nodes up to an {{else}} or {{end}} (returned as the stop action) or the end of the text."""
        nodes: list[_Node] = []
        while self.pos < len(self.items):
            kind, value, line = self.items[self.pos]
            self.pos += 1
            self.line = line
            if kind == "text":
                if value:
                    nodes.append(_Node("text", text=value))
                continue
            toks: list[tuple[str, str]] = value
            try:
                if not toks:
                    raise TemplateError("missing value for command")
                word = toks[0][1] if toks[0][0] == "ident" else ""
                if word in ("else", "end"):
                    return nodes, toks
                if word in ("if", "with", "range"):
                    nodes.append(self.control(word, toks[1:]))
                elif word in ("define", "block") and self.allow_defines:
                    name = self.template_name(word, toks)
                    if word == "define" and (not top or len(toks) != 2):
                        raise TemplateError("{{define}} must be at the top level and take only a name")
                    pipe = self.pipeline(toks[2:]) if word == "block" else None
                    self.define(name)
                    if word == "block":
                        nodes.append(_Node("template", text=name, pipe=pipe))
                elif word in ("break", "continue"):
                    if not self.ranges or len(toks) > 1:
                        raise TemplateError(f"{{{{{word}}}}} outside {{{{range}}}}" if not self.ranges
                                            else f"unexpected {toks[1][1]!r} in {{{{{word}}}}}")
                    nodes.append(_Node(word))
                elif word == "template" and self.allow_defines:
                    name = self.template_name(word, toks)
                    nodes.append(_Node("template", text=name, pipe=self.pipeline(toks[2:]) if toks[2:] else None))
                elif word in _KEYWORDS:
                    raise TemplateError(f"{{{{{word}}}}} is not supported")
                else:
                    nodes.append(_Node("action", pipe=self.pipeline(toks)))
            except TemplateError as exc:
                if exc.line is None:
                    exc.line = line
                raise
        return nodes, None

    @staticmethod
    def template_name(word: str, toks: list[tuple[str, str]]) -> str:
        if len(toks) < 2 or toks[1][0] not in ("str", "raw"):
            raise TemplateError(f"{{{{{word}}}}} needs a quoted template name")
        return _go_unquote(toks[1][1]) if toks[1][0] == "str" else toks[1][1][1:-1]

    def define(self, name: str) -> None:
        """The body of a {{define}} or {{block}}, to its {{end}}, in a scope of its own (only `$`)."""
        saved, self.scopes = self.scopes, [{"$"}]
        body, stop = self.body()
        self.scopes = saved
        if stop is None or stop[0][1] != "end" or len(stop) > 1:
            raise TemplateError(f"unexpected {{{{{stop[0][1] if stop else 'EOF'}}}}} in definition of {name!r}")
        if self.defines.get(name):
            raise TemplateError(f"template: multiple definition of template {name!r}")
        self.defines[name] = body

    def control(self, word: str, toks: list[tuple[str, str]]) -> _Node:
        node = _Node(word)
        self.scopes.append(set())
        opened = self.line
        while True:
            pipe = self.pipeline(toks, allow_two=word == "range")
            self.ranges += word == "range"
            body, stop = self.body()
            self.ranges -= word == "range"
            node.branches.append((pipe, body))
            if stop is None:
                raise TemplateError(f"unexpected EOF: {{{{{word}}}}} without {{{{end}}}}", opened)
            if stop[0][1] == "end":
                break
            # {{else}}, or {{else if ...}} / {{else with ...}} chaining
            if len(stop) > 1 and stop[1][1] == word and word != "range":
                toks = stop[2:]
                continue
            if len(stop) > 1:
                raise TemplateError(f"unexpected {stop[1][1]!r} after else")
            node.else_body, stop = self.body()
            if stop is None or stop[0][1] != "end" or len(stop) > 1:
                raise TemplateError(f"expected {{{{end}}}} after {{{{else}}}} of {{{{{word}}}}}")
            break
        self.scopes.pop()
        return node

    def pipeline(self, toks: list[tuple[str, str]], allow_two: bool = False) -> _Pipeline:
        decl: list[str] = []
        assign = False
        i = 0
        # $x := ..., $x = ..., and for range $i, $x := ...
        if toks and toks[0][0] == "var":
            if len(toks) > 1 and toks[1][0] in ("decl", "assign"):
                decl, assign, i = [toks[0][1]], toks[1][0] == "assign", 2
            elif allow_two and len(toks) > 3 and toks[1][1] == "," and toks[2][0] == "var" and toks[3][0] == "decl":
                decl, i = [toks[0][1], toks[2][1]], 4
        cmds: list[list[_Operand]] = [[]]
        j = i
        while j < len(toks):
            text = toks[j][1]
            if text == "|":
                cmds.append([])
                j += 1
                continue
            operand, j = self.operand(toks, j)
            cmds[-1].append(operand)
        if any(not c for c in cmds):
            raise TemplateError("missing value for command")
        for name in decl:
            if assign:
                self.need(name)
            else:
                self.scopes[-1].add(name)
        return _Pipeline(decl, assign, cmds)

    def need(self, var: str) -> None:
        if not any(var in scope for scope in self.scopes):
            raise TemplateError(f"undefined variable {var!r}")

    def operand(self, toks: list[tuple[str, str]], j: int) -> tuple[_Operand, int]:
        kind, text = toks[j]
        j += 1
        op: _Operand
        if kind == "str":
            op = _Operand("lit", _go_unquote(text))
        elif kind == "raw":
            op = _Operand("lit", text[1:-1])
        elif kind == "char":
            op = _Operand("lit", ord(_go_unquote('"' + text[1:-1] + '"')))
        elif kind == "num":
            clean = text.replace("_", "")
            try:
                op = _Operand("lit", int(clean, 0) if not any(c in clean.lower() for c in ".e") or
                              clean.lower().startswith(("0x", "-0x", "+0x")) else float(clean))
            except ValueError:
                raise TemplateError(f"bad number syntax: {text!r}") from None
        elif kind == "var":
            name, *fields = text.split(".")
            self.need(name)
            op = _Operand("var", name, tuple(fields))
        elif kind == "field":
            op = _Operand("dot", None, tuple(f for f in text.split(".") if f))
        elif kind == "ident":
            if text in ("true", "false"):
                op = _Operand("lit", text == "true")
            elif text == "nil":
                op = _Operand("lit", None)
            elif text in self.funcs:
                op = _Operand("func", text)
            else:
                raise TemplateError(f'function "{text}" not defined')
        elif text == "(":
            depth, k = 1, j
            while k < len(toks) and depth:
                depth += 1 if toks[k][1] == "(" else (-1 if toks[k][0] == "close" else 0)
                k += 1
            if depth:
                raise TemplateError("unclosed left paren")
            # a field chain glued to the parenthesis: (first $r).Value
            op = _Operand("sub", self.pipeline(toks[j:k - 1]), tuple(f for f in toks[k - 1][1][1:].split(".") if f))
            j = k
        else:
            raise TemplateError(f"unexpected {text!r} in command")
        return op, j


def _go_unquote(text: str) -> str:
    try:
        return str(ast.literal_eval(text))
    except (ValueError, SyntaxError):
        raise TemplateError(f"invalid quoted string {text}") from None


# ----------------------------------------------------------------------------------------- rendering


def _last_func(pipe: _Pipeline) -> str:
    head = pipe.cmds[-1][0]
    return str(head.value) if head.kind == "func" else ""


def _html_escape_string(value: Any) -> str:
    """Go's `html` (template.HTMLEscapeString): `<`, `>`, `&`, `'`, `"` and NUL."""
    return "".join({"<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&#39;", '"': "&#34;", "\0": "\ufffd"}.get(c, c)
                   for c in go_str(value))


class _Break(Exception):
    """{{break}}: leave the innermost {{range}}."""


class _Continue(Exception):
    """{{continue}}: the innermost {{range}}'s next element."""


class _Renderer:
    """Executes parsed nodes. `defines` are the named templates `{{ template }}` may call; `escape`, where
    set, turns every action's value into its output, given the output so far and the function that ended
    the pipeline (html/template's escaping, which depends on where in the HTML the value lands and is not
    repeated after an `html` or `urlquery` that did it, for HTML email bodies)."""

    def __init__(self, root: Any, variables: dict[str, Any], funcs: Mapping[str, Callable[..., Any]],
                 defines: Mapping[str, Sequence[_Node]] | None = None,
                 escape: Callable[[Any, list[str], str], str] | None = None) -> None:
        self.dot_root = root
        self.vars: list[dict[str, Any]] = [{"$": root, **variables}]
        self.funcs = funcs
        self.defines = defines or {}
        self.escape = escape
        self.depth = 0

    @classmethod
    def for_rule(cls, data: TemplateData) -> _Renderer:
        """Prometheus' rule template data: `.Labels`, `.Value`, `$labels`, `$value` and the rest."""
        root = {"Labels": dict(data.labels), "Value": data.value, "ExternalLabels": dict(data.external_labels),
                "ExternalURL": data.external_url}
        funcs = dict(FUNCS)
        query = data.query

        def run_query(q: str) -> list[QuerySample]:
            if query is None:
                raise TemplateError("query is not available here")
            return query(str(q))

        funcs["query"] = run_query
        funcs["pathPrefix"] = lambda: urlsplit(data.external_url).path
        funcs["externalURL"] = lambda: data.external_url
        return cls(root, {"$labels": root["Labels"], "$externalLabels": root["ExternalLabels"],
                          "$externalURL": data.external_url, "$value": data.value}, funcs)

    def lookup(self, name: str) -> Any:
        for scope in reversed(self.vars):
            if name in scope:
                return scope[name]
        raise TemplateError(f"undefined variable {name!r}")

    def set_var(self, name: str, value: Any, assign: bool) -> None:
        if assign:
            for scope in reversed(self.vars):
                if name in scope:
                    scope[name] = value
                    return
        self.vars[-1][name] = value

    def render(self, nodes: Sequence[_Node], dot: Any, out: list[str]) -> None:
        for node in nodes:
            if node.kind == "text":
                out.append(node.text)
            elif node.kind == "action":
                assert node.pipe is not None
                value = self.pipeline(node.pipe, dot)
                if not node.pipe.decl:
                    out.append(self.escape(value, out, _last_func(node.pipe)) if self.escape else go_str(value))
            elif node.kind == "template":
                self.call(node, dot, out)
            elif node.kind == "break":
                raise _Break
            elif node.kind == "continue":
                raise _Continue
            elif node.kind == "range":
                self.range(node, dot, out)
            else:
                self.vars.append({})
                try:
                    for pipe, body in node.branches:
                        value = self.pipeline(pipe, dot)
                        if _truth(value):
                            self.render(body, value if node.kind == "with" else dot, out)
                            break
                    else:
                        self.render(node.else_body, dot, out)
                finally:
                    self.vars.pop()

    def call(self, node: _Node, dot: Any, out: list[str]) -> None:
        """{{ template "name" pipeline }}: the named template, with the pipeline's value as dot and `$`."""
        body = self.defines.get(node.text)
        if body is None:
            raise TemplateError(f'template "{node.text}" not defined')
        value = self.pipeline(node.pipe, dot) if node.pipe is not None else None
        if self.depth >= 1000:
            raise TemplateError(f"template {node.text!r}: exceeded maximum template depth (1000)")
        saved, self.vars = self.vars, [{"$": value}]
        self.depth += 1
        try:
            self.render(body, value, out)
        finally:
            self.vars, self.depth = saved, self.depth - 1

    def range(self, node: _Node, dot: Any, out: list[str]) -> None:
        pipe, body = node.branches[0]
        decl = pipe.decl
        items = self.pipeline(_Pipeline([], False, pipe.cmds), dot)
        if isinstance(items, Mapping):
            pairs = sorted(items.items())
        elif isinstance(items, list | tuple | str):
            pairs = list(enumerate(items))
        elif isinstance(items, int):
            pairs = [(i, i) for i in range(items)]
        elif items is None:
            pairs = []
        else:
            raise TemplateError(f"range can't iterate over {go_str(items)}")
        if not pairs:
            self.render(node.else_body, dot, out)
            return
        for key, item in pairs:
            self.vars.append({})
            try:
                if len(decl) == 2:
                    self.vars[-1][decl[0]], self.vars[-1][decl[1]] = key, item
                elif decl:
                    self.vars[-1][decl[0]] = item
                self.render(body, item, out)
            except _Continue:
                pass
            except _Break:
                break
            finally:
                self.vars.pop()

    def pipeline(self, pipe: _Pipeline, dot: Any) -> Any:
        value: Any = None
        for i, cmd in enumerate(pipe.cmds):
            value = self.command(cmd, dot, value, i > 0)
        if pipe.decl and len(pipe.decl) == 1:
            self.set_var(pipe.decl[0], value, pipe.assign)
        return value

    def command(self, cmd: list[_Operand], dot: Any, piped: Any, has_piped: bool) -> Any:
        head = cmd[0]
        if head.kind == "func":
            args = [self.operand(o, dot) for o in cmd[1:]] + ([piped] if has_piped else [])
            fn = self.funcs[head.value]
            try:
                return fn(*args)
            except TypeError as exc:
                raise TemplateError(f"wrong number or type of arguments for {head.value}: {exc}") from None
        if len(cmd) > 1 or has_piped:
            method = self.method(head, dot)
            if method is None:
                raise TemplateError(f"can't give argument to non-function {self.describe(head)}")
            args = [self.operand(o, dot) for o in cmd[1:]] + ([piped] if has_piped else [])
            try:
                return method(*args)
            except TypeError as exc:
                raise TemplateError(f"wrong number or type of arguments for {self.describe(head)}: {exc}") from None
        return self.operand(head, dot)

    def method(self, op: _Operand, dot: Any) -> Callable[..., Any] | None:
        """`.CommonLabels.Remove .GroupLabels.Names`: the last field of a chain named a method of a Go value."""
        if op.kind not in ("dot", "var", "sub") or not op.fields:
            return None
        base = self.operand(_Operand(op.kind, op.value, op.fields[:-1]), dot)
        return go_method(base, op.fields[-1])

    @staticmethod
    def describe(op: _Operand) -> str:
        return {"var": str(op.value), "dot": "." + ".".join(op.fields)}.get(op.kind, repr(op.value))

    def operand(self, op: _Operand, dot: Any) -> Any:
        if op.kind == "lit":
            return op.value
        if op.kind == "func":
            return self.funcs[op.value]()
        if op.kind == "var":
            base = self.lookup(op.value)
        elif op.kind == "sub":
            base = self.pipeline(op.value, dot)
        else:
            base = dot
        for name in op.fields:
            base = _field(base, name)
        return base


def go_method(base: Any, name: str) -> Callable[..., Any] | None:
    """A method of a value that stands for a Go type: its class lists the names in `GO_METHODS`."""
    if name in getattr(type(base), "GO_METHODS", ()):
        return getattr(base, name)
    return None


def _field(base: Any, name: str) -> Any:
    """Go's field evaluation: a method first (called without arguments), then a map key, a struct field."""
    method = go_method(base, name)
    if method is not None:
        try:
            return method()
        except TypeError:
            raise TemplateError(f"wrong number of args for {name}: want more than 0 got 0") from None
    if name in getattr(type(base), "GO_FIELDS", ()):
        return getattr(base, name)
    if isinstance(base, Mapping):
        return base.get(name, "")  # missingkey=zero, as Prometheus sets it
    if isinstance(base, QuerySample) and name in ("Labels", "Value"):
        return getattr(base, name)
    raise TemplateError(f"can't evaluate field {name} in {go_str(base)!r}")


@lru_cache(maxsize=4096)
def _parsed(text: str) -> tuple[_Node, ...]:
    """Parsed once per distinct template: a rule's annotations are rendered at every tick."""
    return tuple(_Parser(text).parse())


def render(text: str, data: TemplateData) -> str:
    """Render `text` as Prometheus does; raises TemplateError for what Prometheus would refuse."""
    renderer = _Renderer.for_rule(data)
    out: list[str] = []
    renderer.render(list(_parsed(text)), renderer.dot_root, out)
    return "".join(out)


def check(text: str) -> None:
    """Fail now, naming the construct, if `text` does not parse (syntax, unknown function, undefined
    variable), as Prometheus does when it loads rules; what depends on data is only known when rendering."""
    _parsed(text)


def expand(tmpl: str, data: TemplateData) -> str:
    """Render a label or annotation template as Prometheus does: a template that fails says so in the
    value instead of failing the rule."""
    if "{{" not in tmpl:
        return tmpl
    try:
        return render(tmpl, data)
    except (TemplateError, ValueError, TypeError) as exc:
        return f"<error expanding template: {exc}>"


def alert_labels(base: Mapping[str, str], templates: Mapping[str, str], data: TemplateData,
                 alertname: str) -> dict[str, str]:
    """An alert's labels: the series' own (without `__name__`), then the rule's templated labels (an empty
    result removes the label), then `alertname`."""
    labels = {k: v for k, v in base.items() if k != "__name__"}
    for k, tmpl in templates.items():
        v = expand(tmpl, data)
        if v:
            labels[k] = v
        else:
            labels.pop(k, None)
    labels["alertname"] = alertname
    return labels


# ------------------------------------------------------------------- named templates (Alertmanager's)

Nodes = tuple[_Node, ...]  # a parsed template, opaque outside this module


def parse_with_defines(text: str, funcs: Mapping[str, Any],
                       variables: frozenset[str] = frozenset({"$"})) -> tuple[Nodes, dict[str, Nodes]]:
    """Parse a template that may `{{ define }}` named templates and call them: the top-level nodes and the
    definitions. Raises TemplateError with the line of the offending action."""
    parser = _Parser(text, funcs, variables, defines=True)
    nodes = parser.parse()
    return tuple(nodes), {k: tuple(v) for k, v in parser.defines.items()}


def template_calls(nodes: Nodes) -> set[str]:
    """The names `{{ template }}` and `{{ block }}` call anywhere in `nodes`."""
    out: set[str] = set()
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if node.kind == "template":
            out.add(node.text)
        for _, body in node.branches:
            stack += body
        stack += node.else_body
    return out


def execute(nodes: Nodes, root: Any, funcs: Mapping[str, Callable[..., Any]], defines: Mapping[str, Nodes],
            escape: Callable[[Any, list[str], str], str] | None = None) -> str:
    """Run parsed nodes on `root` (dot and `$`), with the named templates `defines`."""
    renderer = _Renderer(root, {}, funcs, defines, escape)
    out: list[str] = []
    renderer.render(nodes, root, out)
    return "".join(out)


def root_fields(nodes: Nodes) -> set[str]:
    """The first field names read from the template's own data: `.X` where dot is still the root (outside
    `with` and `range` bodies) and `$.X` anywhere. What the data lacks can then be refused at load, where
    Go would only fail when executing."""
    out: set[str] = set()

    def pipe_fields(pipe: _Pipeline | None, root_dot: bool) -> None:
        if pipe is None:
            return
        for cmd in pipe.cmds:
            for op in cmd:
                if op.kind == "sub":
                    pipe_fields(op.value, root_dot)
                elif op.fields and ((op.kind == "dot" and root_dot) or (op.kind == "var" and op.value == "$")):
                    out.add(op.fields[0])

    def walk(body: Sequence[_Node], root_dot: bool) -> None:
        for node in body:
            pipe_fields(node.pipe, root_dot)
            for pipe, branch in node.branches:
                pipe_fields(pipe, root_dot)
                walk(branch, root_dot and node.kind == "if")
            walk(node.else_body, root_dot)

    walk(nodes, True)
    return out
