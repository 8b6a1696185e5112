"""What `amtool config routes [test]` prints, from the same route tree the notification sink uses: the
receivers an alert reaches (Alertmanager's Route.Match order) and the route tree drawn as amtool's
treeprint draws it (byte for byte, including its no-break spaces), so scripts written for amtool's
output work on ours."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from watchkeeper.core.notify.config import Route
from watchkeeper.core.notify.matchers import Matcher

_OP_ORDER = {"=": 0, "!=": 1, "=~": 2, "!~": 3}  # Go's labels.MatchType values
_LINK, _END_INDENT = "│\u00a0\u00a0 ", "    "  # treeprint's EdgeTypeLink + indent, and an ended level


@dataclass
class _Node:
    value: str
    children: list[_Node] = field(default_factory=list)


def receivers(route: Route, labels: Mapping[str, str]) -> list[str]:
    """The receivers in the order amtool prints them (comma-joined by the caller)."""
    return [r.receiver for r in route.match(dict(labels))]


def _slug(route: Route, show_continue: bool, show_receiver: bool) -> str:
    """amtool's getRouteTreeSlug: matchers sorted as dispatch.NewRoute sorts them (name, value, type)."""
    ms: list[Matcher] = [Matcher.of(m.name, m.op, f"^(?:{m.value})$") if m.legacy_re else m
                         for m in route.matchers]
    ms.sort(key=lambda m: (m.name, m.value, _OP_ORDER[m.op]))
    out = "{" + ",".join(str(m) for m in ms) + "}" if ms else "default-route"
    if route.continue_ and show_continue:
        out += "  continue: true"
    if show_receiver:
        out += "  receiver: " + route.receiver
    return out


def route_tree(route: Route) -> str:
    """`amtool config routes show` (without the "Routing tree:" heading)."""
    def build(r: Route) -> _Node:
        return _Node(_slug(r, True, True), [build(c) for c in r.routes])
    return _draw(build(route))


def matching_tree(route: Route, labels: Mapping[str, str]) -> str:
    """The `--tree` of `amtool config routes test`: the branches an alert walks, receivers at the ends."""
    def build(r: Route) -> _Node:
        node = _Node(_slug(r, False, False))
        for child in r.routes:
            if all(m.matches(labels) for m in child.matchers):
                node.children.append(build(child))
                if not child.continue_:
                    break
        if not node.children:
            node.value = _slug(r, False, True)
        return node
    return _draw(build(route))


def _draw(top: _Node) -> str:
    """treeprint: a "." root with the tree as its one branch; every line ends with a newline."""
    lines = ["."]

    def walk(nodes: list[_Node], prefix: str) -> None:
        for i, n in enumerate(nodes):
            last = i == len(nodes) - 1
            lines.append(prefix + ("└── " if last else "├── ") + n.value)
            walk(n.children, prefix + (_END_INDENT if last else _LINK))
    walk([top], "")
    return "\n".join(lines) + "\n"
