"""promtool's rule unit tests (`promtool test rules`), run by Watchkeeper's own engine: `rule_files`,
`evaluation_interval`, `group_eval_order`, and `tests` with `interval`, `input_series` in expanding
notation, `external_labels`, `alert_rule_test` and `promql_expr_test`. As promtool 2.42 does it: every
group is evaluated at every evaluation_interval tick from 0 to the last eval_time; an alert test at
`eval_time` compares the firing alerts after the last evaluation at or before it; a PromQL test queries
after all evaluations; sample values must be equal bit for bit."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from watchkeeper.core.errors import CoreError, SourceError
from watchkeeper.core.promql import sharding
from watchkeeper.core.promql.evaluator import DEFAULT_SEMANTICS, Leaves, Semantics, evaluate, parse
from watchkeeper.core.promql.promqltest import partition_of
from watchkeeper.core.promql.series_notation import (
    STALE,
    expand_series,
    parse_duration,
    parse_metric,
    parse_series_line,
)
from watchkeeper.core.promql.series_store import SeriesStore
from watchkeeper.core.promql.values import Scalar, labels_key
from watchkeeper.core.rules.engine import EngineStep, RuleEngine
from watchkeeper.core.rules.loader import RuleGroup, load_rule_files
from watchkeeper.core.yaml_source import load_yaml_file


@dataclass
class FileResult:
    path: str
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def run_test_file(path: str, semantics: Semantics = DEFAULT_SEMANTICS, partitions: int = 0) -> FileResult:
    """Run one promtool test file; rules and `promql_expr_test` expressions evaluated with `semantics`
    (promtool 2.42 itself is Prometheus 2: a file written for it passes in `prometheus2`).

    ``partitions`` > 0: evaluate through the partitioned path (core.promql.sharding), as the rules'
    merge stage does: the input series split over that many stores by a hash of their labels, the
    engine's own store holding only what it writes (recorded metrics, ALERTS, ALERTS_FOR_STATE), each
    rule's leaves merged from every store's partials. The results must be the same."""
    res = FileResult(path)
    try:
        doc = load_yaml_file(path)  # for the line numbers of errors
        # Go reads expected labels and annotations as strings: `1.5e+08` stays as written, so take every
        # scalar as its text, as YAML's base loader does.
        with open(path, encoding="utf-8") as fh:
            spec = yaml.load(fh.read(), Loader=yaml.BaseLoader) or {}
        if not isinstance(spec, dict):
            raise doc.error((), "expected a promtool test file (rule_files, tests)")
        unknown = set(spec) - {"rule_files", "evaluation_interval", "group_eval_order", "tests"}
        if unknown:
            raise doc.error((sorted(unknown)[0],), "unknown field in a rule test file")
        base = Path(path).parent
        eval_interval = parse_duration(spec.get("evaluation_interval", "1m"))
        files = [str(base / f) for f in spec.get("rule_files") or []]
        order = spec.get("group_eval_order") or []
        tests = spec.get("tests") or []
        if not isinstance(tests, list) or not all(isinstance(tg, dict) for tg in tests):
            raise doc.error(("tests",), "expected a list of test groups (mappings with input_series, ...)")
        for i, tg in enumerate(tests):
            groups = load_rule_files(files, default_interval=eval_interval, semantics=semantics)
            if order:
                rank = {name: j for j, name in enumerate(order)}
                groups.sort(key=lambda g: rank.get(g.name, len(rank)))
            res.failures += _run_group(tg, i, groups, eval_interval, semantics, partitions)
    except (CoreError, OSError, KeyError, TypeError, ValueError) as exc:
        res.failures.append(f"{type(exc).__name__}: {exc}" if not isinstance(exc, SourceError) else str(exc))
    except Exception as exc:  # one file's crash must not stop the files after it
        res.failures.append(f"internal error (please report): {type(exc).__name__}: {exc}")
    return res


def _run_group(tg: dict[str, Any], index: int, groups: list[Any], eval_interval: float,
               semantics: Semantics, partitions: int = 0) -> list[str]:
    name = tg.get("name") or f"#{index}"
    interval = parse_duration(tg.get("interval", "")) if tg.get("interval") else eval_interval
    alert_tests = tg.get("alert_rule_test") or []
    expr_tests = tg.get("promql_expr_test") or []
    alert_times = sorted({parse_duration(a["eval_time"]) for a in alert_tests})
    times = alert_times + [parse_duration(e["eval_time"]) for e in expr_tests]
    last = max(times, default=0.0)
    store = SeriesStore(retention=math.inf)
    parts = [SeriesStore(retention=math.inf) for _ in range(partitions)]
    until = loaded_until(last, eval_interval)
    for entry in tg.get("input_series") or []:
        metric, labels = parse_series_line(entry["series"])
        target = parts[partition_of({**labels, "__name__": metric}, partitions)] if parts else store
        for k, value in enumerate(expand_series(str(entry["values"]))):
            if value is None or k * interval > until:
                continue
            if value is STALE:
                target.mark_stale(metric, labels, k * interval)
            else:
                target.append_one(metric, labels, k * interval, float(value))
    merge_local = _merge_local(groups)
    plans: dict[tuple[str, int], sharding.ShardPlan] = {}

    def leaves(g: RuleGroup, i: int, t: float) -> Leaves:
        p = plans.get((g.name, i))
        if p is None:
            p = plans[(g.name, i)] = sharding.plan(g.rules[i].expr, merge_local)
        return sharding.merge(p, [sharding.partial(p, t, s, eval_interval) for s in parts])

    engine = RuleEngine(groups, external_labels=tg.get("external_labels") or {},
                        external_url=tg.get("external_url", ""), subquery_step=eval_interval,
                        semantics=semantics, leaves=leaves if parts else None)
    failures: list[str] = []
    pending = list(alert_times)
    k = 0
    while k * eval_interval <= last + 1e-9:
        ts = k * eval_interval
        step = EngineStep()
        for g in engine.groups:
            engine.eval_group(g, ts, store, step)
        while pending and ts <= pending[0] + 1e-9 and pending[0] < ts + eval_interval - 1e-9:
            at = pending.pop(0)
            for case in (a for a in alert_tests if abs(parse_duration(a["eval_time"]) - at) < 1e-9):
                failures += _check_alerts(name, case, engine)
        k += 1
    for case in expr_tests:
        failures += _check_expr(name, case, store, eval_interval, semantics, parts, merge_local)
    return failures


def _merge_local(groups: list[RuleGroup]) -> sharding.MergeLocal:
    """What the merge stage's own store holds: the recorded metrics and the alerts' series (a name-less
    selector may match them: a planning error, see sharding.plan)."""
    names = {r.record for g in groups for r in g.rules if r.record} | {"ALERTS", "ALERTS_FOR_STATE"}
    return lambda name: name is None or name in names


def loaded_until(last_eval: float, eval_interval: float) -> float:
    """The last input sample time promtool 2.42 loads: it appends input series lazily, up to each
    evaluation tick (0, interval, ...), and stops at the last tick at or before the latest eval_time; a
    `promql_expr_test` later than that tick does not see the samples in between."""
    return math.floor(last_eval / eval_interval + 1e-9) * eval_interval + 1e-9


def _check_alerts(group: str, case: dict[str, Any], engine: RuleEngine) -> list[str]:
    alertname = case["alertname"]
    got = sorted((labels_key(a.labels), labels_key(a.annotations)) for a in engine.firing(alertname))
    exp = []
    for e in case.get("exp_alerts") or []:
        labels = {str(k): str(v) for k, v in (e.get("exp_labels") or {}).items()}
        labels["alertname"] = alertname
        notes = {str(k): str(v) for k, v in (e.get("exp_annotations") or {}).items()}
        exp.append((labels_key(labels), labels_key(notes)))
    exp.sort()
    if got == exp:
        return []
    return [f"    group {group}, alertname: {alertname}, time: {case['eval_time']},\n"
            f"        exp:{_fmt_alerts(exp)},\n        got:{_fmt_alerts(got)}"]


def _fmt_alerts(alerts: list[Any]) -> str:
    return "[" + ", ".join(f"(labels: {dict(lab)}, annotations: {dict(ann)})" for lab, ann in alerts) + "]"


def _check_expr(group: str, case: dict[str, Any], store: SeriesStore, eval_interval: float,
                semantics: Semantics, parts: list[SeriesStore] | None = None,
                merge_local: sharding.MergeLocal | None = None) -> list[str]:
    at = parse_duration(case["eval_time"])
    try:
        parsed = parse(case["expr"], semantics)
        if parts and merge_local is not None:
            p = sharding.plan(parsed, merge_local)
            leaves = sharding.merge(p, [sharding.partial(p, at, s, eval_interval) for s in parts])
            value = evaluate(p.expr, at, store, subquery_step=eval_interval, leaves=leaves)
        else:
            value = evaluate(parsed, at, store, subquery_step=eval_interval)
    except CoreError as exc:
        return [f"    group {group}, expr: {case['expr']!r}, time: {case['eval_time']}: {exc}"]
    vec = [({}, value.value)] if isinstance(value, Scalar) else [(s.labels, s.value) for s in value]  # type: ignore[union-attr]
    got = sorted((labels_key(lab), v) for lab, v in vec)
    exp = sorted((labels_key(parse_metric(str(s.get("labels", "")))), _yaml_float(s["value"]))
                 for s in case.get("exp_samples") or [])
    # promtool 2.42 compares with reflect.DeepEqual: equal bit for bit (and NaN never equals NaN)
    same = [g[0] for g in got] == [e[0] for e in exp] and all(
        g[1] == e[1] for g, e in zip(got, exp, strict=True))
    if same:
        return []
    return [f"    expr: {case['expr']!r}, time: {case['eval_time']},\n        exp: {exp}\n        got: {got}"]


def _yaml_float(text: str) -> float:
    """A YAML float as Go's YAML reads it into a float64 (`.inf`, `-.Inf`, `.nan` included)."""
    low = str(text).strip().lower()
    if low in (".inf", "+.inf"):
        return math.inf
    if low == "-.inf":
        return -math.inf
    if low == ".nan":
        return math.nan
    return float(text)
