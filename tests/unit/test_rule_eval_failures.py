"""Rule evaluation failures are seen (vmalert's `ruleState`): counted per group, the last few kept per rule,
logged at most once a minute per rule, and left in a file the dashboard reads. Given a rule that fails at every
tick, expect these counts, this ring and these log lines."""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

import pytest

from watchkeeper.agents.rule_failure_report import RuleFailureReport
from watchkeeper.core.promql.series_store import SeriesStore
from watchkeeper.core.rules.engine import RuleEngine
from watchkeeper.core.rules.eval_failures import EvalFailure, EvalFailures
from watchkeeper.core.rules.loader import load_rules_text
from watchkeeper.plumbing.rule_failure_files import STALE_SECONDS, read_failures, write_failures
from watchkeeper.plumbing.self_metrics import RULE_EVAL_FAILURES

# Two series that differ only in `instance`; the alert's own `instance` label makes them one labelset, which
# Prometheus refuses at every evaluation ("vector contains metrics with the same labelset ...").
RULES = """
groups:
  - name: clash
    interval: 1m
    rules:
      - alert: Collide
        expr: up
        labels: {instance: same}
      - alert: Fine
        expr: up > 0
"""


def _store(minutes: int) -> SeriesStore:
    store = SeriesStore(retention=math.inf)
    for k in range(minutes + 1):
        for inst in ("a", "b"):
            store.append_one("up", {"job": "j", "instance": inst}, k * 60.0, 1.0)
    return store


def test_an_engine_failing_every_tick_counts_each_and_keeps_the_last_five() -> None:
    engine = RuleEngine(load_rules_text(RULES))
    engine.start_at(0.0)
    engine.advance(_store(20), 20 * 60.0)  # ticks 0, 60, ..., 1200: 21 evaluations of each rule
    f = engine.failures
    assert f.counts == {"clash": 21}
    kept = f.last()
    assert [x.t for x in kept] == [960.0, 1020.0, 1080.0, 1140.0, 1200.0]
    assert {(x.group, x.rule) for x in kept} == {("clash", "Collide")}
    assert "same labelset after applying alert labels" in kept[0].message
    assert len(f.take()) == 21 and f.take() == []


def test_the_untaken_queue_is_bounded_but_counts_are_not() -> None:
    f = EvalFailures(keep=2, pending_limit=3)
    for t in range(10):
        f.add(EvalFailure("g", "r", float(t), "boom"))
    assert f.total == 10
    assert [x.t for x in f.take()] == [7.0, 8.0, 9.0]
    assert [x.t for x in f.last()] == [8.0, 9.0]


def test_merging_two_processes_keeps_the_newest_per_rule_and_adds_counts() -> None:
    a, b = EvalFailures(keep=3), EvalFailures(keep=3)
    for t in (1.0, 4.0, 5.0):
        a.add(EvalFailure("g", "r", t, "a"))
    for t in (2.0, 6.0):
        b.add(EvalFailure("g", "r", t, "b"))
    b.add(EvalFailure("h", "s", 3.0, "b"))
    merged = EvalFailures.from_json(a.to_json(), keep=3)
    merged.merge(EvalFailures.from_json(b.to_json(), keep=3))
    assert merged.counts == {"g": 5, "h": 1}
    assert [(x.rule, x.t) for x in merged.last()] == [("s", 3.0), ("r", 4.0), ("r", 5.0), ("r", 6.0)]


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_report_counts_every_failure_but_logs_one_line_a_minute_per_rule(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = _Clock()
    report = RuleFailureReport(tmp_path, "host:1", clock=clock)
    before = RULE_EVAL_FAILURES.labels("g1")._value.get()
    caplog.set_level(logging.WARNING, logger="watchkeeper.rules")
    for t in range(5):  # five failures within the same minute
        report.report([EvalFailure("g1", "r", float(t), "boom")])
        clock.now += 10
    report.report([EvalFailure("g1", "other", 0.0, "bang")])  # another rule is not held back by the first
    clock.now += 30  # 80 s after the first line
    report.report([EvalFailure("g1", "r", 9.0, "boom")])
    assert RULE_EVAL_FAILURES.labels("g1")._value.get() - before == 7
    lines = [r.getMessage() for r in caplog.records if "evaluation failed" in r.getMessage()]
    assert len(lines) == 3, lines
    assert "rule 'r'" in lines[0] and "rule 'other'" in lines[1]
    assert "(4 more failures of this rule in the last 80 s)" in lines[2]


def test_the_dashboard_reads_what_live_workers_wrote_and_ignores_stale_files(tmp_path: Path) -> None:
    clock = _Clock()
    report = RuleFailureReport(tmp_path, "host:1", clock=clock)
    report.publish()
    assert not (tmp_path / "rule-failures").exists(), "nothing failed: no file"
    report.report([EvalFailure("g", "r", 60.0, "boom")])
    report.publish()
    other = EvalFailures()
    other.add(EvalFailure("g", "r", 120.0, "bang"))
    gone = write_failures(tmp_path, "host:2", other)
    got = read_failures(tmp_path)
    assert got.counts == {"g": 2} and [x.message for x in got.last()] == ["boom", "bang"]
    old = time.time() - STALE_SECONDS - 10
    os.utime(gone, (old, old))
    assert read_failures(tmp_path).counts == {"g": 1}
