"""What Prometheus rule files (`core.rules.loader`) and anomaly rule files (`core.anomaly_rules`) check alike:
the top level, the groups, group names across files, durations, and the labels and annotations of a rule,
each with one message naming file, line, group and rule. The rules that differ (what a rule holds) stay in
their own loader."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from watchkeeper.core.errors import SourceError
from watchkeeper.core.promql.series_notation import SeriesNotationError, parse_duration
from watchkeeper.core.rules.templates import TemplateError, check
from watchkeeper.core.yaml_source import Path as DocPath
from watchkeeper.core.yaml_source import YamlDocument, load_yaml_file
from watchkeeper.schemas.label_names import is_label_name

M = TypeVar("M", bound=BaseModel)


class _Named(Protocol):
    @property
    def name(self) -> str: ...


G = TypeVar("G", bound=_Named)


def where(group: str, rule: str | None) -> str:
    """How an error names its place: `group 'g', rule 'r'`."""
    return f"group {group!r}" + (f", rule {rule!r}" if rule else "")


def file_spec(doc: YamlDocument, spec: type[M], expected: str) -> M | None:
    """The file's top level validated as `spec`; None for an empty file. `expected` says what the file should be."""
    if doc.data is None:
        return None
    if not isinstance(doc.data, dict):
        raise doc.error((), expected)
    result: M = doc.validate(spec)
    return result


def groups_of_files(paths: list[str], load: Callable[[YamlDocument], list[G]], key: str) -> list[G]:
    """The groups of every file, in order; a group name used in two files is an error naming both."""
    groups: list[G] = []
    seen: dict[str, str] = {}
    for p in paths:
        for g in load(load_yaml_file(p)):
            if g.name in seen:
                raise SourceError(p, None, key, f"group name {g.name!r} is already used in {seen[g.name]}")
            seen[g.name] = p
            groups.append(g)
    return groups


def validated_groups(doc: YamlDocument, key: str, raw: list[Any],
                     spec: type[BaseModel]) -> Iterator[tuple[DocPath, Any]]:
    """Each group of `doc[key]` validated as `spec`, with its location; a group that is not a mapping, has
    no name or repeats one is an error at its line."""
    names: set[str] = set()
    for gi, graw in enumerate(raw):
        gloc: DocPath = (key, gi)
        if not isinstance(graw, dict):
            raise doc.error(gloc, "a group must be a mapping with name and rules")
        g = doc.validate(spec, graw, base=gloc)
        if not g.name.strip():
            raise doc.error((*gloc, "name"), "a group needs a name")
        if g.name in names:
            raise doc.error((*gloc, "name"), f"group name {g.name!r} is used twice in this file")
        names.add(g.name)
        yield gloc, g


def duration_at(doc: YamlDocument, loc: DocPath, place: str, text: str | int | None) -> float:
    """A Prometheus duration (`5m`, `1h30m`) in seconds; 0 when not given."""
    if text is None:
        return 0.0
    try:
        return parse_duration(str(text))
    except SeriesNotationError as exc:
        raise doc.error(loc, f"{place}: {exc}") from None


def labels_and_annotations(doc: YamlDocument, loc: DocPath, place: str, labels: Mapping[str, object],
                           annotations: Mapping[str, object],
                           reserved: Callable[[str], bool]) -> tuple[dict[str, str], dict[str, str]]:
    """A rule's labels and annotations as strings (YAML's `true` as Go writes it), each label name valid and
    not `reserved`, each value a template that parses."""
    texts = {k: _str(v) for k, v in labels.items()}, {k: _str(v) for k, v in annotations.items()}
    for k in texts[0]:
        if not is_label_name(k) or reserved(k):
            raise doc.error((*loc, "labels", k), f"{place}: {k!r} is not a valid label name")
    for kind, mapping in zip(("labels", "annotations"), texts, strict=True):
        for k, v in mapping.items():
            try:
                check(v)
            except TemplateError as exc:
                raise doc.error((*loc, kind, k), f"{place}: template: {exc}") from None
    return texts


def _str(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
