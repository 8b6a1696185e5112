"""YAML loading that remembers where every key and item came from, so errors can name the line."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from watchkeeper.core.errors import SourceError

Path = tuple[str | int, ...]


@dataclass
class YamlDocument:
    """Parsed data plus a map from a path (keys and list indexes) to its 1-based line."""

    path: str
    data: Any
    lines: dict[Path, int] = field(default_factory=dict)
    # The text as written of every scalar that did not load as a string (`2.50`, `true`, `~`): Go's yaml.v2
    # decodes any scalar into a string field as written, which Alertmanager's label maps rely on.
    raw: dict[Path, str] = field(default_factory=dict)

    def line_of(self, loc: Iterable[str | int]) -> int | None:
        """The line of `loc`, or of its nearest ancestor that has one."""
        key = tuple(loc)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), None)

    def error(self, loc: Iterable[str | int], message: str) -> SourceError:
        loc = tuple(loc)
        return SourceError(self.path, self.line_of(loc), ".".join(str(p) for p in loc), message)

    def validate(self, model: type[BaseModel], data: Any = None, base: Path = ()) -> Any:
        """Validate with pydantic; the first error becomes a `SourceError` naming file, line and field."""
        try:
            return model.model_validate(self.data if data is None else data)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = base + tuple(p for p in err["loc"] if isinstance(p, str | int))
            more = f" ({exc.error_count() - 1} more errors)" if exc.error_count() > 1 else ""
            raise self.error(loc, err["msg"] + more) from None


class GoYamlLoader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1's base-60 numbers, as Go's yaml.v2 reads them: `17:00` stays the
    string "17:00" (SafeLoader makes it 1020), which Alertmanager's time intervals rely on."""

    yaml_implicit_resolvers = {  # noqa: RUF012 (PyYAML's own class attribute, copied not shared)
        first: [(tag, regexp) for tag, regexp in resolvers
                if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


GoYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"))
GoYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


def load_yaml(text: str, path: str, loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> YamlDocument:
    """Parse one YAML document; a syntax error becomes a `SourceError` with the line."""
    try:
        node = yaml.compose(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise SourceError(path, line, "", f"invalid YAML: {problem}") from None
    doc = YamlDocument(path=path, data=None)
    if node is None:
        doc.data = None
        return doc
    doc.lines[()] = node.start_mark.line + 1
    _index(node, (), doc.lines, doc.raw)
    doc.data = yaml.load(text, Loader=loader)
    return doc


def load_yaml_file(path: str, loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> YamlDocument:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise SourceError(path, None, "", f"cannot read file: {exc.strerror}") from None
    return load_yaml(text, path, loader)


def _index(node: yaml.Node, loc: Path, lines: dict[Path, int], raw: dict[Path, str]) -> None:
    if isinstance(node, yaml.ScalarNode) and node.tag != "tag:yaml.org,2002:str":
        raw[loc] = node.value
    elif isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            child = (*loc, key)
            lines[child] = key_node.start_mark.line + 1
            _index(value_node, child, lines, raw)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = (*loc, i)
            lines[child] = item.start_mark.line + 1
            _index(item, child, lines, raw)
