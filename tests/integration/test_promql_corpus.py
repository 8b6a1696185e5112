"""The PromQL corpus: every tests/rules/promql file passes promtool AND Watchkeeper's evaluator.

promtool (Prometheus 2.42) proves each expectation right; the evaluator must meet it. Recording rules
are evaluated at every evaluation_interval tick from 0 to the last eval_time, as promtool does, and
their outputs written back (with staleness markers when a series disappears) before the
promql_expr_test queries run.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.promql.evaluator import ParsedExpr, evaluate, parse
from core.promql.series_notation import STALE, expand_series, parse_duration, parse_metric, parse_series_line
from core.promql.series_store import SeriesStore
from core.promql.values import Scalar, VectorSample, labels_key

CORPUS = Path(__file__).resolve().parents[1] / "rules" / "promql"
FILES = sorted(CORPUS.glob("*.test.yml"))


def _load_series(store: SeriesStore, series: list[dict[str, str]], interval: float) -> None:
    for entry in series:
        name, labels = parse_series_line(entry["series"])
        for i, value in enumerate(expand_series(entry["values"])):
            if value is None:
                continue
            if value is STALE:
                store.mark_stale(name, labels, i * interval)
            else:
                store.append_one(name, labels, i * interval, float(value))  # type: ignore[arg-type]


def _as_vector(result: Any) -> list[VectorSample]:
    if isinstance(result, Scalar):
        return [VectorSample({}, result.value)]
    return list(result)


class _RecordingGroups:
    """Recording rules of the test's rule files, evaluated tick by tick into the store."""

    def __init__(self, rule_files: list[Path]) -> None:
        self.rules: list[tuple[str, ParsedExpr, dict[str, str]]] = []
        for path in rule_files:
            for group in yaml.safe_load(path.read_text())["groups"]:
                for rule in group["rules"]:
                    if "record" in rule:
                        labels = {k: str(v) for k, v in (rule.get("labels") or {}).items()}
                        self.rules.append((rule["record"], parse(rule["expr"]), labels))
        self.previous: dict[int, dict[tuple[tuple[str, str], ...], dict[str, str]]] = {}

    def eval_at(self, ts: float, store: SeriesStore) -> None:
        for i, (record, expr, extra) in enumerate(self.rules):
            current: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
            for sample in _as_vector(evaluate(expr, ts, store)):
                labels = {**sample.labels, **extra, "__name__": record}
                labels = {k: v for k, v in labels.items() if v}
                current[labels_key(labels)] = labels
                store.append_one(record, labels, ts, sample.value)
            for key, labels in self.previous.get(i, {}).items():
                if key not in current:
                    store.mark_stale(record, labels, ts)
            self.previous[i] = current


def _same(expected: float, got: float) -> bool:
    """promtool 2.42 compares samples with reflect.DeepEqual: values must be bit-for-bit equal."""
    return expected == got


def _run_watchkeeper(test_file: Path) -> list[str]:
    doc = yaml.safe_load(test_file.read_text())
    eval_interval = parse_duration(doc.get("evaluation_interval", "1m"))
    rule_files = [test_file.parent / f for f in doc.get("rule_files", [])]
    failures = []
    for group in doc["tests"]:
        store = SeriesStore()
        _load_series(store, group.get("input_series", []), parse_duration(group.get("interval", eval_interval)))
        rules = _RecordingGroups(rule_files)
        cases = group.get("promql_expr_test", [])
        times = [parse_duration(c["eval_time"]) for c in cases]
        times += [parse_duration(a["eval_time"]) for a in group.get("alert_rule_test", [])]
        last = max(times, default=0.0)
        tick = 0
        while tick * eval_interval <= last + 1e-9:
            rules.eval_at(tick * eval_interval, store)
            tick += 1
        for case, at in zip(cases, times, strict=False):
            got = sorted((labels_key(s.labels), s.value) for s in _as_vector(evaluate(case["expr"], at, store)))
            exp = sorted(
                (labels_key(parse_metric(s["labels"])), float(s["value"])) for s in case.get("exp_samples") or []
            )
            ok = [g[0] for g in got] == [e[0] for e in exp] and all(
                _same(e[1], g[1]) for e, g in zip(exp, got, strict=True)
            )
            if not ok:
                failures.append(f"{case['expr']!r} at {case['eval_time']}:\n  exp {exp}\n  got {got}")
    return failures


def test_corpus_is_large_enough() -> None:
    assert len(FILES) >= 30


@pytest.mark.parametrize("test_file", FILES, ids=[f.name.removesuffix(".test.yml") for f in FILES])
def test_promql_corpus_file(test_file: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is required: it is the reference"
    ran = subprocess.run([promtool, "test", "rules", test_file.name], cwd=test_file.parent,
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, f"promtool rejects {test_file.name}:\n{ran.stdout}{ran.stderr}"
    failures = _run_watchkeeper(test_file)
    assert not failures, f"Watchkeeper disagrees with promtool on {test_file.name}:\n" + "\n".join(failures)
