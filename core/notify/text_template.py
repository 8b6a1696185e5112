"""The small template subset of the SMS HTTP gateway's `body` (core/notify/sms.py), whose values are
escaped for the body's content type: `{{ .Status }}`, `{{ .Receiver }}`, `{{ .ExternalURL }}`,
`{{ .GroupLabels.name }}`, `{{ .CommonLabels.name }}`, `{{ .CommonAnnotations.name }}` and
`{{ len .Alerts }}`. Receiver texts are full notification templates: core/notify/templates.py."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.S)
_FIELD = re.compile(r"^\.(Status|Receiver|ExternalURL|GroupKey)$"
                    r"|^\.(GroupLabels|CommonLabels|CommonAnnotations)\.([a-zA-Z_][a-zA-Z0-9_]*)$"
                    r"|^len \.Alerts$")


class TemplateError(ValueError):
    pass


def check_template(text: str) -> None:
    for m in _ACTION.finditer(text):
        if _FIELD.match(m.group(1)) is None:
            raise TemplateError(
                f"template action {{{{ {m.group(1)} }}}} is not supported; use .Status, .Receiver, .ExternalURL, "
                ".GroupLabels.x, .CommonLabels.x, .CommonAnnotations.x or len .Alerts")


def render_template(text: str, data: Mapping[str, Any]) -> str:
    def one(m: re.Match[str]) -> str:
        f = _FIELD.match(m.group(1))
        if f is None:
            raise TemplateError(f"unsupported template action {m.group(0)}")
        if f.group(1):
            return str(data.get(f.group(1), ""))
        if f.group(2):
            return str(data.get(f.group(2), {}).get(f.group(3), ""))
        return str(len(data.get("Alerts", [])))

    return _ACTION.sub(one, text)
