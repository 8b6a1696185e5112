"""An Alertmanager configuration file, loaded unchanged: `global`, the `route` tree, `receivers` and
`inhibit_rules`. Keys Alertmanager has but Watchkeeper does not implement (time intervals, templates)
are refused with the file, line and field, never ignored."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.notify.escalation import Policy, PolicySpec, build_policies
from core.notify.matchers import Matcher, MatcherError, legacy_matchers, matchers_str, parse_matcher
from core.notify.receiver_configs import GlobalConfig, ReceiverConfig, duration
from core.notify.remediation import check_report_to
from core.notify.text_template import TemplateError, check_template
from core.yaml_source import YamlDocument, load_yaml, load_yaml_file

UNSUPPORTED = {
    "templates": "Go notification templates are not supported; texts take {{ .CommonLabels.x }}-style fields",
    "time_intervals": "time intervals are not supported",
    "mute_time_intervals": "mute time intervals are not supported",
    "active_time_intervals": "active time intervals are not supported",
}
DEFAULT_GROUP_WAIT, DEFAULT_GROUP_INTERVAL, DEFAULT_REPEAT_INTERVAL = 30.0, 300.0, 4 * 3600.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RouteSpec(_Strict):
    receiver: str | None = None
    group_by: list[str] | None = None
    matchers: list[str] = Field(default_factory=list)
    match: dict[str, str] = Field(default_factory=dict)
    match_re: dict[str, str] = Field(default_factory=dict)
    group_wait: float | None = None
    group_interval: float | None = None
    repeat_interval: float | None = None
    continue_: bool = Field(default=False, alias="continue")
    routes: list[RouteSpec] = Field(default_factory=list)
    mute_time_intervals: list[str] = Field(default_factory=list)
    active_time_intervals: list[str] = Field(default_factory=list)
    # Watchkeeper extension (core/notify/escalation.py): the escalation policy of this route's groups.
    escalation: str | None = None

    _d = field_validator("group_wait", "group_interval", "repeat_interval", mode="before")(duration)


class InhibitSpec(_Strict):
    source_matchers: list[str] = Field(default_factory=list)
    target_matchers: list[str] = Field(default_factory=list)
    source_match: dict[str, str] = Field(default_factory=dict)
    source_match_re: dict[str, str] = Field(default_factory=dict)
    target_match: dict[str, str] = Field(default_factory=dict)
    target_match_re: dict[str, str] = Field(default_factory=dict)
    equal: list[str] = Field(default_factory=list)


class ConfigSpec(_Strict):
    global_: GlobalConfig = Field(default_factory=GlobalConfig, alias="global")
    route: RouteSpec
    receivers: list[ReceiverConfig] = Field(min_length=1)
    inhibit_rules: list[InhibitSpec] = Field(default_factory=list)
    templates: list[str] = Field(default_factory=list)
    time_intervals: list[Any] = Field(default_factory=list)
    mute_time_intervals: list[Any] = Field(default_factory=list)
    # Watchkeeper extension (core/notify/escalation.py).
    escalation_policies: list[PolicySpec] = Field(default_factory=list)


@dataclass
class Route:
    """A node of the route tree with its settings resolved (children inherit what they do not set)."""

    receiver: str
    group_by: frozenset[str] | None  # None: `...`, group by every label
    group_wait: float
    group_interval: float
    repeat_interval: float
    matchers: list[Matcher]
    continue_: bool = False
    routes: list[Route] = field(default_factory=list)
    key: str = "{}"
    escalation: str = ""  # an escalation policy's name; "" for none (children inherit it)

    def match(self, labels: dict[str, str]) -> list[Route]:
        """Alertmanager's Route.Match: the deepest matching routes, siblings tried in order until one
        matches without `continue`."""
        if not all(m.matches(labels) for m in self.matchers):
            return []
        found: list[Route] = []
        for child in self.routes:
            got = child.match(labels)
            found += got
            if got and not child.continue_:
                break
        return found or [self]

    def group_labels(self, labels: dict[str, str]) -> dict[str, str]:
        if self.group_by is None:
            return dict(labels)
        return {k: v for k, v in labels.items() if k in self.group_by}


@dataclass
class InhibitRule:
    source: list[Matcher]
    target: list[Matcher]
    equal: tuple[str, ...]


@dataclass
class NotifyConfig:
    path: str
    global_: GlobalConfig
    route: Route
    receivers: dict[str, ReceiverConfig]
    inhibit_rules: list[InhibitRule]
    escalation_policies: dict[str, Policy] = field(default_factory=dict)


def load_notify_config_file(path: str) -> NotifyConfig:
    return _build(load_yaml_file(path))


def load_notify_config(text: str, path: str = "<alertmanager.yml>") -> NotifyConfig:
    return _build(load_yaml(text, path))


def _build(doc: YamlDocument) -> NotifyConfig:
    if not isinstance(doc.data, dict):
        raise doc.error((), "expected an Alertmanager configuration (a mapping with route and receivers)")
    for key, why in UNSUPPORTED.items():
        if doc.data.get(key):
            raise doc.error((key,), why)
    spec: ConfigSpec = doc.validate(ConfigSpec)
    names: dict[str, int] = {}
    for i, r in enumerate(spec.receivers):
        if r.name in names:
            raise doc.error(("receivers", i, "name"), f"receiver {r.name!r} is defined twice")
        names[r.name] = i
        for kind, c in r.integrations():
            for attr in ("title", "text", "html", "description"):
                text = getattr(c, attr, "")
                if text:
                    try:
                        check_template(text)
                    except TemplateError as exc:
                        base, idx = kind.split("[")
                        raise doc.error(("receivers", i, f"{base}_configs", int(idx[:-1]), attr), str(exc)) from None
    if spec.route.receiver is None:
        raise doc.error(("route",), "the root route needs a receiver")
    if spec.route.matchers or spec.route.match or spec.route.match_re:
        raise doc.error(("route",), "the root route must not have matchers (it matches every alert)")
    policies = build_policies(doc, spec.escalation_policies, names)
    root = _route(doc, spec.route, None, ("route",), names)
    _check_escalations(doc, spec.route, ("route",), policies)
    check_report_to(doc, spec.receivers)
    rules = [
        InhibitRule(
            source=_matchers(doc, r.source_matchers, r.source_match, r.source_match_re,
                             ("inhibit_rules", i, "source_matchers")),
            target=_matchers(doc, r.target_matchers, r.target_match, r.target_match_re,
                             ("inhibit_rules", i, "target_matchers")),
            equal=tuple(r.equal),
        )
        for i, r in enumerate(spec.inhibit_rules)
    ]
    return NotifyConfig(doc.path, spec.global_, root, {r.name: r for r in spec.receivers}, rules, policies)


def _check_escalations(doc: YamlDocument, spec: RouteSpec, loc: tuple[str | int, ...],
                       policies: dict[str, Policy]) -> None:
    if spec.escalation and spec.escalation not in policies:
        raise doc.error((*loc, "escalation"), f"escalation policy {spec.escalation!r} is not defined under "
                                              "escalation_policies")
    for i, child in enumerate(spec.routes):
        _check_escalations(doc, child, (*loc, "routes", i), policies)


def _matchers(doc: YamlDocument, texts: list[str], match: dict[str, str], match_re: dict[str, str],
              loc: tuple[str | int, ...]) -> list[Matcher]:
    out: list[Matcher] = []
    for j, t in enumerate(texts):
        try:
            out.append(parse_matcher(t))
        except MatcherError as exc:
            raise doc.error((*loc, j), str(exc)) from None
    try:
        return out + legacy_matchers(match, match_re)
    except MatcherError as exc:
        raise doc.error(loc[:-1], str(exc)) from None


def _route(doc: YamlDocument, spec: RouteSpec, parent: Route | None, loc: tuple[str | int, ...],
           receivers: dict[str, int]) -> Route:
    for key in ("mute_time_intervals", "active_time_intervals"):
        if getattr(spec, key):
            raise doc.error((*loc, key), UNSUPPORTED[key])
    receiver = spec.receiver or (parent.receiver if parent else "")
    if receiver not in receivers:
        raise doc.error((*loc, "receiver"), f"receiver {receiver!r} is not defined under receivers")
    group_by: frozenset[str] | None
    if spec.group_by is None:
        group_by = parent.group_by if parent else frozenset()
    elif "..." in spec.group_by:
        if len(spec.group_by) > 1:
            raise doc.error((*loc, "group_by"), "'...' must be the only entry of group_by")
        group_by = None
    else:
        group_by = frozenset(spec.group_by)
    matchers = _matchers(doc, spec.matchers, spec.match, spec.match_re, (*loc, "matchers"))
    route = Route(
        receiver=receiver,
        group_by=group_by,
        group_wait=spec.group_wait if spec.group_wait is not None
        else (parent.group_wait if parent else DEFAULT_GROUP_WAIT),
        group_interval=spec.group_interval if spec.group_interval is not None
        else (parent.group_interval if parent else DEFAULT_GROUP_INTERVAL),
        repeat_interval=spec.repeat_interval if spec.repeat_interval is not None
        else (parent.repeat_interval if parent else DEFAULT_REPEAT_INTERVAL),
        matchers=matchers,
        continue_=spec.continue_,
        key=(parent.key + "/" if parent else "") + matchers_str(matchers),
        escalation=spec.escalation if spec.escalation is not None else (parent.escalation if parent else ""),
    )
    if route.group_interval <= 0:
        raise doc.error((*loc, "group_interval"), "group_interval must be greater than 0")
    route.routes = [_route(doc, child, route, (*loc, "routes", i), receivers) for i, child in enumerate(spec.routes)]
    return route

