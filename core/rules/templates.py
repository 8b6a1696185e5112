"""The Go-template subset that Prometheus rule labels and annotations use, rendered as Prometheus does:
`{{ $value }}`, `{{ $labels.x }}`, `{{ .Value }}`, `{{ .Labels.x }}`, `{{ $externalLabels.x }}`,
`{{ $externalURL }}`, the functions `humanize`, `humanize1024`, `humanizeDuration`,
`humanizePercentage`, `printf`, `toUpper`, `toLower`, `title`, pipes (`{{ $value | humanize }}`) and
`{{-`/`-}}` trimming. Control structures (`if`, `range`, ...) are refused at load time, so a template
never fails while alerts are being evaluated."""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.slo.go_format import go_float

_ACTION = re.compile(r"{{(-?)\s*(.*?)\s*(-?)}}", re.S)
_CONTROL = {"if", "else", "end", "range", "with", "define", "template", "block"}


class TemplateError(ValueError):
    pass


@dataclass(frozen=True)
class TemplateData:
    labels: Mapping[str, str]
    value: float
    external_labels: Mapping[str, str]
    external_url: str = ""


def go_g4(v: float) -> str:
    """Go's `%.4g`."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return f"{v:.4g}"


def humanize(v: float) -> str:
    if v == 0 or math.isnan(v) or math.isinf(v):
        return go_g4(v)
    if abs(v) >= 1:
        prefix = ""
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(v) < 1000:
                break
            prefix, v = p, v / 1000
        return go_g4(v) + prefix
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return go_g4(v) + prefix


def humanize1024(v: float) -> str:
    if abs(v) <= 1 or math.isnan(v) or math.isinf(v):
        return go_g4(v)
    prefix = ""
    for p in ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"):
        if abs(v) < 1024:
            break
        prefix, v = p, v / 1024
    return go_g4(v) + prefix


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
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return f"{go_g4(v)}{prefix}s"


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
    if isinstance(x, float):
        return go_float(x)
    return "" if x is None else str(x)


FUNCS: dict[str, Any] = {
    "humanize": lambda x: humanize(_to_float(x)),
    "humanize1024": lambda x: humanize1024(_to_float(x)),
    "humanizeDuration": lambda x: humanize_duration(_to_float(x)),
    "humanizePercentage": lambda x: go_g4(_to_float(x) * 100) + "%",
    "humanizeTimestamp": None,
    "printf": _printf,
    "toUpper": lambda s: str(s).upper(),
    "toLower": lambda s: str(s).lower(),
    "title": lambda s: str(s).title(),
}


def _tokens(text: str) -> list[str]:
    lex = shlex.shlex(text, posix=False, punctuation_chars="|")
    lex.whitespace_split = True
    lex.quotes = '"`'
    return list(lex)


def _term(tok: str, data: TemplateData) -> Any:
    if tok.startswith('"') and tok.endswith('"'):
        return bytes(tok[1:-1], "utf-8").decode("unicode_escape")
    if tok.startswith("`") and tok.endswith("`"):
        return tok[1:-1]
    if tok in ("$value", ".Value"):
        return data.value
    if tok in ("$externalURL", ".ExternalURL"):
        return data.external_url
    for prefix, source in (("$labels", data.labels), (".Labels", data.labels),
                           ("$externalLabels", data.external_labels), (".ExternalLabels", data.external_labels)):
        if tok == prefix:
            return dict(source)
        if tok.startswith(prefix + "."):
            return source.get(tok[len(prefix) + 1:], "")
    try:
        return float(tok) if any(c in tok for c in ".eE") else int(tok)
    except ValueError:
        raise TemplateError(f"unknown template term {tok!r}") from None


def _command(words: list[str], piped: Any, has_piped: bool, data: TemplateData) -> Any:
    if not words:
        raise TemplateError("empty pipeline stage")
    head = words[0]
    if head in FUNCS:
        fn = FUNCS[head]
        if fn is None:
            raise TemplateError(f"function {head} is not supported")
        args = [_term(w, data) for w in words[1:]] + ([piped] if has_piped else [])
        try:
            return fn(*args)
        except TypeError:
            raise TemplateError(f"wrong number of arguments for {head}") from None
    if len(words) > 1 or has_piped:
        raise TemplateError(f"{head!r} is not a function")
    return _term(head, data)


def _eval_action(body: str, data: TemplateData) -> str:
    words = _tokens(body)
    if words and words[0] in _CONTROL:
        raise TemplateError(f"{{{{ {words[0]} }}}} is not supported (Watchkeeper renders values, labels and "
                            "humanize*/printf pipelines only)")
    stages: list[list[str]] = [[]]
    for w in words:
        if w == "|":
            stages.append([])
        else:
            stages[-1].append(w)
    value: Any = None
    for i, stage in enumerate(stages):
        value = _command(stage, value, i > 0, data)
    return go_str(value)


def render(text: str, data: TemplateData) -> str:
    """Render `text`; raises TemplateError for anything outside the subset."""
    out: list[str] = []
    pos = 0
    for m in _ACTION.finditer(text):
        literal = text[pos:m.start()]
        if m.group(1):
            literal = literal.rstrip()
        if out and out[-1] == "\x00trim":
            out.pop()
            literal = literal.lstrip()
        out.append(literal)
        out.append(_eval_action(m.group(2), data))
        if m.group(3):
            out.append("\x00trim")
        pos = m.end()
    tail = text[pos:]
    if out and out[-1] == "\x00trim":
        out.pop()
        tail = tail.lstrip()
    out.append(tail)
    return "".join(out)


def check(text: str) -> None:
    """Fail now, naming the construct, if `text` would not render."""
    render(text, TemplateData({"__name__": "x"}, 1.0, {}))


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
