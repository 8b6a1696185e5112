"""Writes docs/reference/configuration.md from the pydantic configuration models, so the reference never drifts.

Each field's description is the comment written above it in the model's source (or beside it), each section's
the model's docstring. `python scripts/config_reference.py` rewrites the page; `--check` fails when it is stale
(tests/unit/test_config_reference.py runs that).
"""

from __future__ import annotations

import ast
import inspect
import sys
import textwrap
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from watchkeeper.plumbing.config import Config

PAGE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "configuration.md"


def _comments(model: type[BaseModel]) -> dict[str, str]:
    """Field name -> the comment lines right above its annotation (and a trailing comment on its line)."""
    source = textwrap.dedent(inspect.getsource(model))
    lines = source.splitlines()
    found: dict[str, str] = {}
    for node in ast.parse(source).body[0].body:  # type: ignore[attr-defined]
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above: list[str] = []
        i = node.lineno - 2
        while i >= 0 and lines[i].strip().startswith("#"):
            above.insert(0, lines[i].strip().lstrip("#").strip())
            i -= 1
        line = lines[node.lineno - 1]
        if "  # " in line:
            above.append(line.split("  # ", 1)[1].strip())
        found[node.target.id] = " ".join(above)
    return found


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{origin.__name__}[{args}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _default(info: FieldInfo) -> str:
    if info.default is PydanticUndefined:
        return "required"
    value = info.default
    if isinstance(value, BaseModel):
        return ""
    if value is None:
        return "derived"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"`{value!r}`"
    return f"`{value:_}`" if abs(value) >= 10_000 else f"`{value}`"


def _bounds(info: FieldInfo) -> str:
    out = []
    for meta in info.metadata:
        for name, sign in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤"), ("pattern", "matches")):
            value = getattr(meta, name, None)
            if value is not None:
                out.append(f"{sign} `{value}`")
    return ", ".join(out)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _section(model: type[BaseModel], path: str, out: list[str]) -> None:
    doc = inspect.cleandoc(model.__dict__.get("__doc__") or "")
    if model is not Config and doc:
        out += [doc.replace("\n\n", "\n").replace("\n", " "), ""]
    notes = _comments(model)
    rows, nested = [], []
    for name, info in model.model_fields.items():
        if info.exclude:
            continue
        sub = _model_of(info.annotation)
        key = f"{path}.{name}" if path else name
        if sub is not None:
            nested.append((key + ("[]" if typing.get_origin(info.annotation) is list else ""), sub))
            continue
        desc = notes.get(name, "").replace("|", "\\|")
        kind = _type_name(info.annotation).replace("|", "\\|")
        rows.append(f"| `{key}` | {kind} | {_default(info)} | {_bounds(info)} | {desc} |")
    if rows:
        out += ["| key | type | default | bounds | what it does |", "|---|---|---|---|---|", *rows, ""]
    for key, sub in nested:
        out += [f"## `{key}`", ""]
        _section(sub, key, out)


def render() -> str:
    out = [
        "# Configuration reference",
        "",
        "Generated from the configuration models by `python scripts/config_reference.py` (CI fails when this",
        "page and the models differ). Every key is optional; put overrides in `./watchkeeper.yaml` or pass",
        "`--config FILE`. A wrong key or value is refused with the file, line and field.",
        "",
    ]
    _section(Config, "", out)
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    text = render()
    if sys.argv[1:] == ["--check"]:
        if not PAGE.exists() or PAGE.read_text() != text:
            print(f"{PAGE} is stale: run python scripts/config_reference.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
