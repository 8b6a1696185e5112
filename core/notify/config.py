"""An Alertmanager configuration file, loaded unchanged: `global`, the `route` tree, `receivers`,
`inhibit_rules`, `time_intervals` and `templates` (the file globs are resolved and kept; receiver texts
are still the subset of core/notify/text_template.py, checked at load). Keys Alertmanager has but
Watchkeeper does not implement are refused with the file, line and field, never ignored."""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.notify.am_url import URLError, parse_url
from core.notify.escalation import Policy, PolicySpec, build_policies
from core.notify.matchers import Matcher, MatcherError, legacy_matchers, matchers_str, parse_matcher
from core.notify.receiver_configs import Bool, GlobalConfig, ReceiverConfig, am_duration
from core.notify.receiver_kinds import KindConfig
from core.notify.remediation import check_report_to
from core.notify.text_template import TemplateError, check_template
from core.notify.time_intervals import TimeInterval, TimeIntervalError, TimeIntervals, parse_time_intervals
from core.yaml_source import GoYamlLoader, YamlDocument, load_yaml, load_yaml_file

DEFAULT_GROUP_WAIT, DEFAULT_GROUP_INTERVAL, DEFAULT_REPEAT_INTERVAL = 30.0, 300.0, 4 * 3600.0
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")  # Prometheus' model.LabelNameRE, as Alertmanager 0.25 checks


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
    continue_: Bool = Field(default=False, alias="continue")
    routes: list[RouteSpec] = Field(default_factory=list)
    mute_time_intervals: list[str] = Field(default_factory=list)
    active_time_intervals: list[str] = Field(default_factory=list)
    # Watchkeeper extension (core/notify/escalation.py): the escalation policy of this route's groups.
    escalation: str | None = None

    _d = field_validator("group_wait", "group_interval", "repeat_interval", mode="before")(am_duration)


class InhibitSpec(_Strict):
    source_matchers: list[str] = Field(default_factory=list)
    target_matchers: list[str] = Field(default_factory=list)
    source_match: dict[str, str] = Field(default_factory=dict)
    source_match_re: dict[str, str] = Field(default_factory=dict)
    target_match: dict[str, str] = Field(default_factory=dict)
    target_match_re: dict[str, str] = Field(default_factory=dict)
    equal: list[str] = Field(default_factory=list)


class NamedTimeIntervalSpec(_Strict):
    name: str = ""
    time_intervals: list[Any] | None = None


class ConfigSpec(_Strict):
    global_: GlobalConfig = Field(default_factory=GlobalConfig, alias="global")

    @field_validator("global_", "templates", "inhibit_rules", "time_intervals", "mute_time_intervals",
                     mode="before")
    @classmethod
    def _empty(cls, v: Any, info: Any) -> Any:
        """An empty `global:` (or list key) is YAML null: Alertmanager takes it as absent."""
        if v is None:
            return {} if info.field_name == "global_" else []
        return v

    route: RouteSpec
    receivers: list[ReceiverConfig] = Field(min_length=1)
    inhibit_rules: list[InhibitSpec] = Field(default_factory=list)
    templates: list[str] = Field(default_factory=list)
    time_intervals: list[NamedTimeIntervalSpec] = Field(default_factory=list)
    mute_time_intervals: list[NamedTimeIntervalSpec] = Field(default_factory=list)
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
    # Not inherited by child routes (Alertmanager's NewRoute takes them from the node itself).
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()
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
    time_intervals: TimeIntervals = field(default_factory=lambda: TimeIntervals({}))
    templates: list[str] = field(default_factory=list)  # template files the `templates:` globs matched
    escalation_policies: dict[str, Policy] = field(default_factory=dict)


def load_notify_config_file(path: str) -> NotifyConfig:
    return _build(load_yaml_file(path, GoYamlLoader))


def load_notify_config(text: str, path: str = "<alertmanager.yml>") -> NotifyConfig:
    return _build(load_yaml(text, path, GoYamlLoader))


def _build(doc: YamlDocument) -> NotifyConfig:
    if not isinstance(doc.data, dict):
        raise doc.error((), "expected an Alertmanager configuration (a mapping with route and receivers)")
    _label_values_as_written(doc)
    spec: ConfigSpec = doc.validate(ConfigSpec)
    names: dict[str, int] = {}
    for i, r in enumerate(spec.receivers):
        if r.name in names:
            raise doc.error(("receivers", i, "name"), f"receiver {r.name!r} is defined twice")
        names[r.name] = i
        for kind, c in r.integrations():
            base, idx = kind.split("[")
            loc = ("receivers", i, f"{base}_configs", int(idx[:-1]))
            texts: list[tuple[tuple[str, ...], str]] = []
            if isinstance(c, KindConfig):
                for key in c.URLS:
                    if c.get(key) is not None:
                        try:
                            parse_url(c.get(key))
                        except URLError as exc:
                            raise doc.error((*loc, key), str(exc)) from None
                for key in c.TEXTS:
                    value = c.get(key)
                    texts += [((key, k), str(v)) for k, v in value.items()] if isinstance(value, dict) \
                        else [((key,), str(value))] if value is not None else []
            else:
                texts += [((attr,), getattr(c, attr, "")) for attr in ("title", "text", "html", "description")]
                texts += [(("headers", k), v) for k, v in getattr(c, "headers", {}).items()]
            for where, text in texts:
                if text:
                    try:
                        check_template(text)
                    except TemplateError as exc:
                        raise doc.error((*loc, *where), str(exc)) from None
            _check_global_defaults(doc, spec, base, c, loc)
    if spec.route.receiver is None:
        raise doc.error(("route",), "the root route needs a receiver")
    if spec.route.matchers or spec.route.match or spec.route.match_re:
        raise doc.error(("route",), "the root route must not have matchers (it matches every alert)")
    for key in ("mute_time_intervals", "active_time_intervals"):
        if getattr(spec.route, key):
            raise doc.error(("route", key), f"the root route must not have any {key.replace('_', ' ')}")
    intervals = _time_intervals(doc, spec)
    policies = build_policies(doc, spec.escalation_policies, names)
    root = _route(doc, spec.route, None, ("route",), names, intervals)
    _check_escalations(doc, spec.route, ("route",), policies)
    check_report_to(doc, spec.receivers)
    for i, rule in enumerate(spec.inhibit_rules):
        for j, name in enumerate(rule.equal):
            if not LABEL_NAME.fullmatch(name):
                raise doc.error(("inhibit_rules", i, "equal", j), f'"{name}" is not a valid label name')
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
    return NotifyConfig(doc.path, spec.global_, root, {r.name: r for r in spec.receivers}, rules, intervals,
                        _template_files(doc, spec.templates), policies)


def _label_values_as_written(doc: YamlDocument) -> None:
    """Go's yaml.v2 decodes any scalar into a string as written, so Alertmanager reads `match: {code: 2}` as
    code="2" (and `2.50` as "2.50", `true` as "true"); a null value is "" in `match`, and in `match_re` is
    amtool's `invalid regexp value`. Rewrites those values of the route tree and inhibit rules in place."""

    def fix(loc: tuple[str | int, ...], regex: bool) -> None:
        labels = _at(doc.data, loc)
        if not isinstance(labels, dict):
            return
        for name, value in labels.items():
            if not isinstance(name, str) or not LABEL_NAME.fullmatch(name):
                raise doc.error((*loc, name), f'invalid label name "{name}"')
            if value is None and regex:
                raise doc.error((*loc, name), f'invalid regexp value for "{name}"')
            if value is None:
                labels[name] = ""
            elif not isinstance(value, str | list | dict):  # a number, boolean or date: its text
                labels[name] = doc.raw.get((*loc, name), str(value))

    def route(loc: tuple[str | int, ...]) -> None:
        node = _at(doc.data, loc)
        if not isinstance(node, dict):
            return
        fix((*loc, "match"), False)
        fix((*loc, "match_re"), True)
        for i in range(len(node["routes"]) if isinstance(node.get("routes"), list) else 0):
            route((*loc, "routes", i))

    route(("route",))
    rules = doc.data.get("inhibit_rules")
    for i in range(len(rules) if isinstance(rules, list) else 0):
        for key in ("source_match", "target_match", "source_match_re", "target_match_re"):
            fix(("inhibit_rules", i, key), key.endswith("_re"))


def _at(data: Any, loc: tuple[str | int, ...]) -> Any:
    for part in loc:
        if isinstance(part, int) and isinstance(data, list) and part < len(data):
            data = data[part]
        elif isinstance(part, str) and isinstance(data, dict):
            data = data.get(part)
        else:
            return None
    return data


def _check_global_defaults(doc: YamlDocument, spec: ConfigSpec, kind: str, c: Any,
                           loc: tuple[str | int, ...]) -> None:
    """Alertmanager's Config.UnmarshalYAML: a setting left out of an integration must come from `global`."""
    g = spec.global_
    if kind == "slack" and not (c.api_url or c.api_url_file or g.slack_api_url or g.slack_api_url_file):
        raise doc.error((*loc, "api_url"), "no global Slack API URL set")
    if kind == "email":
        if not (c.smarthost or g.smtp_smarthost):
            raise doc.error((*loc, "smarthost"), "no global SMTP smarthost set")
        if not (c.from_ or g.smtp_from):
            raise doc.error((*loc, "from"), "no global mail from address set")
        seen: set[str] = set()  # Alertmanager compares headers by their canonical (title-case) form
        for h in c.headers:
            if h.title() in seen:
                raise doc.error((*loc, "headers", h), f"duplicate header {h.title()!r} in email config")
            seen.add(h.title())
    if kind == "opsgenie" and not (c.get("api_key") or c.get("api_key_file") or g.opsgenie_api_key
                                   or g.opsgenie_api_key_file):
        raise doc.error(loc, "no global OpsGenie API Key set either inline or in a file")
    if kind == "victorops" and not (c.get("api_key") or c.get("api_key_file") or g.victorops_api_key
                                    or g.victorops_api_key_file):
        raise doc.error(loc, "no global VictorOps API Key set")
    if kind == "wechat":
        if not (c.get("api_secret") or g.wechat_api_secret):
            raise doc.error(loc, "no global Wechat ApiSecret set")
        if not (c.get("corp_id") or g.wechat_api_corp_id):
            raise doc.error(loc, "no global Wechat CorpID set")


def _template_files(doc: YamlDocument, globs: list[str]) -> list[str]:
    """Alertmanager's `templates:` globs, relative to the config file's directory; a glob that matches
    nothing is no error there either (the Helm charts point at a directory that may be empty)."""
    base = os.path.dirname(os.path.abspath(doc.path))
    out: list[str] = []
    for i, pattern in enumerate(globs):
        full = pattern if os.path.isabs(pattern) else os.path.join(base, pattern)
        for path in sorted(glob.glob(full)):
            if not os.access(path, os.R_OK):
                raise doc.error(("templates", i), f"cannot read template file {path}")
            out.append(path)
    return out


def _time_intervals(doc: YamlDocument, spec: ConfigSpec) -> TimeIntervals:
    """Both `mute_time_intervals` (deprecated) and `time_intervals`, one namespace, as Alertmanager has."""
    out: dict[str, list[TimeInterval]] = {}
    for key in ("mute_time_intervals", "time_intervals"):
        for i, named in enumerate(getattr(spec, key)):
            what = "mute time interval" if key == "mute_time_intervals" else "time interval"
            if not named.name:
                raise doc.error((key, i), f"missing name in {what}")
            if named.name in out:
                raise doc.error((key, i, "name"), f"{what} {named.name!r} is not unique")
            try:
                out[named.name] = parse_time_intervals(named.time_intervals)
            except TimeIntervalError as exc:
                raise doc.error((key, i, "time_intervals", *exc.loc), exc.message) from None
    return TimeIntervals(out)


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
           receivers: dict[str, int], intervals: TimeIntervals) -> Route:
    for key in ("mute_time_intervals", "active_time_intervals"):
        for j, name in enumerate(getattr(spec, key)):
            if name not in intervals:
                raise doc.error((*loc, key, j), f"undefined time interval {name!r} used in route")
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
        for j, name in enumerate(spec.group_by):
            if not LABEL_NAME.fullmatch(name):
                raise doc.error((*loc, "group_by", j), f'invalid label name "{name}" in group_by list')
        group_by = frozenset(spec.group_by)
    if parent is None and spec.continue_:
        raise doc.error((*loc, "continue"), "cannot have continue in root route")
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
        mute_time_intervals=tuple(spec.mute_time_intervals),
        active_time_intervals=tuple(spec.active_time_intervals),
        escalation=spec.escalation if spec.escalation is not None else (parent.escalation if parent else ""),
    )
    if route.group_interval <= 0:
        raise doc.error((*loc, "group_interval"), "group_interval must be greater than 0")
    if spec.repeat_interval == 0:
        raise doc.error((*loc, "repeat_interval"), "repeat_interval cannot be zero")
    route.routes = [_route(doc, child, route, (*loc, "routes", i), receivers, intervals)
                    for i, child in enumerate(spec.routes)]
    return route

