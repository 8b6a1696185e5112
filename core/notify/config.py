"""An Alertmanager configuration file, loaded unchanged: `global`, the `route` tree, `receivers`,
`inhibit_rules`, `time_intervals` and `templates` (the globs, relative to the config file, are read
and their `{{ define }}` blocks parsed: core/notify/templates.py). Every receiver field that is a
template is parsed at load, and the templates it calls must exist, so an error names the config file,
line and field (or the template file and line) before anything is sent. Keys Alertmanager has but
Watchkeeper does not implement are refused with the file, line and field, never ignored."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from watchkeeper.core.errors import SourceError
from watchkeeper.core.notify.am_url import URLError, parse_url
from watchkeeper.core.notify.escalation import Policy, PolicySpec, build_policies
from watchkeeper.core.notify.matchers import Matcher, MatcherError, legacy_matchers, matchers_str, parse_matcher
from watchkeeper.core.notify.receiver_configs import Bool, GlobalConfig, ReceiverConfig, am_duration
from watchkeeper.core.notify.receiver_kinds import KindConfig
from watchkeeper.core.notify.remediation import check_report_to
from watchkeeper.core.notify.templates import NotifyTemplates, TemplateError, TemplateFileError, load_templates
from watchkeeper.core.notify.time_intervals import TimeInterval, TimeIntervalError, TimeIntervals, parse_time_intervals
from watchkeeper.core.yaml_source import GoYamlLoader, YamlDocument, load_yaml, load_yaml_file
from watchkeeper.schemas.label_names import LABEL_NAME

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
    # The named templates receivers render with: Alertmanager's default names, then the files' definitions.
    notify_templates: NotifyTemplates = field(default_factory=lambda: load_templates([]))


def load_notify_config_file(path: str) -> NotifyConfig:
    return _build(load_yaml_file(path, GoYamlLoader))


def load_notify_config(text: str, path: str = "<alertmanager.yml>") -> NotifyConfig:
    return _build(load_yaml(text, path, GoYamlLoader))


def _build(doc: YamlDocument) -> NotifyConfig:
    if not isinstance(doc.data, dict):
        raise doc.error((), "expected an Alertmanager configuration (a mapping with route and receivers)")
    _label_values_as_written(doc)
    spec: ConfigSpec = doc.validate(ConfigSpec)
    files = _template_files(doc, spec.templates)
    templates = _load_templates(doc, files)
    names: dict[str, int] = {}
    for i, r in enumerate(spec.receivers):
        if r.name in names:
            raise doc.error(("receivers", i, "name"), f"receiver {r.name!r} is defined twice")
        names[r.name] = i
        _check_receiver_templates(doc, i, templates)
        for kind, c in r.integrations():
            base, idx = kind.split("[")
            loc = ("receivers", i, f"{base}_configs", int(idx[:-1]))
            if isinstance(c, KindConfig):
                for key in c.URLS:
                    if c.get(key) is not None:
                        try:
                            parse_url(c.get(key))
                        except URLError as exc:
                            raise doc.error((*loc, key), str(exc)) from None
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
                        [f for f, _ in files], policies, templates)


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


def _template_files(doc: YamlDocument, globs: list[str]) -> list[tuple[str, int]]:
    """Alertmanager's `templates:` globs, relative to the config file's directory, with the index of the
    glob that matched each file; a glob that matches nothing is no error there either (the Helm charts
    point at a directory that may be empty)."""
    base = os.path.dirname(doc.path)  # a relative config path gives paths relative to the same directory
    out: list[tuple[str, int]] = []
    for i, pattern in enumerate(globs):
        full = pattern if os.path.isabs(pattern) else os.path.join(base, pattern)
        for path in sorted(glob.glob(full)):
            if os.path.isdir(path):
                continue
            if not os.access(path, os.R_OK):
                raise doc.error(("templates", i), f"cannot read template file {path}")
            out.append((path, i))
    return out


def _load_templates(doc: YamlDocument, files: list[tuple[str, int]]) -> NotifyTemplates:
    """The files' `{{ define }}` blocks; an error names the template file and line, and the config line
    of the `templates:` entry that brought the file in."""
    for path, i in files:
        try:
            load_templates([path])
        except TemplateFileError as exc:
            where = f"{doc.path}:{doc.line_of(('templates', i))}"
            raise SourceError(exc.path, exc.line, "", f"{exc.message} (template file of {where} templates.{i})"
                              ) from None
    return load_templates([p for p, _ in files])


# Receiver keys whose values Alertmanager does not treat as templates: URLs, files and credentials.
_NOT_TEMPLATES = ("api_url", "url", "webhook_url", "http_config", "send_resolved", "command", "env", "verify",
                  "api_key", "api_secret", "token", "user_key", "bot_token", "sigv4")
# ...except where a kind's key of that name is a template: Pushover's `url` (default pushover.default.url).
_TEMPLATES_OF_KIND = {"pushover_configs": ("url",)}
# Watchkeeper's extensions keep their own rules (core/notify/sms.py's HTTP body, core/notify/remediation.py)
# except for an SMS `text`, which is a notification template.
_OWN_TEXTS = ("sms_configs", "command_configs", "alertmanager_configs")


def _check_receiver_templates(doc: YamlDocument, i: int, templates: NotifyTemplates) -> None:
    """Every template of receiver `i` (email `headers` too) parsed now, with the templates it calls; the
    raw YAML is walked so that the error has the line of the very field."""
    receiver = doc.data["receivers"][i]
    if isinstance(receiver, dict):
        for key, configs in receiver.items():
            if not key.endswith("_configs") or not isinstance(configs, list) or (
                    key in _OWN_TEXTS and key != "sms_configs"):
                continue
            for j, c in enumerate(configs):
                base: tuple[str | int, ...] = ("receivers", i, key, j)
                sms = key == "sms_configs" and isinstance(c, dict)
                skip = tuple(k for k in _NOT_TEMPLATES if k not in _TEMPLATES_OF_KIND.get(key, ()))
                texts = _template_strings({"text": c.get("text")} if sms else c, base, skip)
                for loc, text in texts:
                    try:
                        templates.check(text)
                    except TemplateError as exc:
                        where = f" (line {exc.line} of the template)" if exc.line and "\n" in text else ""
                        raise doc.error(loc, f"template: {exc.message}{where}") from None


def _template_strings(value: Any, loc: tuple[str | int, ...],
                      skip: tuple[str, ...]) -> list[tuple[tuple[str | int, ...], str]]:
    if isinstance(value, str):
        return [(loc, value)] if "{{" in value else []
    out: list[tuple[tuple[str | int, ...], str]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if not (isinstance(k, str) and (k in skip or k.endswith("_file"))):
                out += _template_strings(v, (*loc, k), skip)
    elif isinstance(value, list):
        for n, v in enumerate(value):
            out += _template_strings(v, (*loc, n), skip)
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

