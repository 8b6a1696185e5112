"""Prometheus' own PromQL test suite (promql/promqltest/testdata/*.test) against promtool 2.42 and Watchkeeper.

Each `load` block and its `eval instant` cases become one promtool rule-test group with deliberately
wrong expectations, so promtool prints what Prometheus 2.42 computes for every case ("got: ..."); then
Watchkeeper's evaluator runs the same cases on the same series and must give the same samples, bit
for bit. Native-histogram series are left out of the input (of both), and range evaluations, expected
failures, cases with histogram results or native-histogram functions, blocks that load a series
twice (promtool then loads an arbitrary part of them) and cases where three promtool runs disagree (its
series order is random, and some float sums depend on it) are skipped (counted). The upstream
expectations themselves are Prometheus 3's (left-open ranges...), so promtool 2.42's answer is the
reference here, as in the issue that asked for this measurement (#19).

Run (needs a checkout of prometheus/prometheus):
    PYTHONPATH=. python bench/promql/promqltest_vs_promtool.py /path/to/prometheus/promql/promqltest/testdata
With `--expected prometheus3` (or prometheus2) it compares instead with the suite's own expected values,
as promqltest does (all samples loaded, floats equal to 1e-6 relative).
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from watchkeeper.core.errors import CoreError
from watchkeeper.core.promql.evaluator import evaluate, parse
from watchkeeper.core.promql.promqltest import almost_equal, split_series
from watchkeeper.core.promql.series_notation import (
    STALE,
    expand_series,
    parse_duration,
    parse_metric,
    parse_series_line,
)
from watchkeeper.core.promql.series_store import SeriesStore
from watchkeeper.core.promql.values import Scalar, labels_key
from watchkeeper.core.rules.unit_test import loaded_until

_EVAL = re.compile(r"^eval(_ordered|_fail|_warn|_info)?\s+instant\s+at\s+(\S+)\s+(.*)$")
_RESULT = re.compile(r'expr: "((?:[^"\\]|\\.)*)", time: (\S+?),(?: err: (.*)|\n\s+exp: .*\n\s+got: (.*))')
_SAMPLE = re.compile(r"(\{[^}]*\}) (\S+?)(?:, |$)")
# Functions of native histograms: promtool 2.42 answers them with nothing on float series; not counted.
_NATIVE = re.compile(r"\bhistogram_(count|sum|avg|fraction|stddev|stdvar)\s*\(")


@dataclass
class Block:
    interval: str
    series: list[tuple[str, str, str]] = field(default_factory=list)  # (selector, values, load interval)
    cases: list[tuple[str, str]] = field(default_factory=list)  # (time, expr)
    expected: list[list[str]] = field(default_factory=list)  # the suite's own expected lines, per case
    histograms: bool = False
    duplicates: bool = False  # a series loaded twice: promtool then loads an arbitrary part of the block
    mixed: bool = False  # loads with different intervals: not one promtool test group


@dataclass
class FileCount:
    cases: int = 0
    skipped: int = 0
    answered: int = 0
    passed: int = 0
    failures: list[str] = field(default_factory=list)


def parse_test_file(text: str) -> tuple[list[Block], int]:
    blocks: list[Block] = []
    skipped = 0
    lines = text.splitlines()
    i = 0
    current: Block | None = None
    while i < len(lines):
        line = lines[i].rstrip()
        i += 1
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line.startswith("load"):
            parts = stripped.split()
            interval = parts[1] if len(parts) > 1 else "1m"
            if current is None or current.cases or current.interval != interval:
                # loads add to the same storage until `clear`: a new block starts with what is loaded so far
                previous = current
                current = Block(interval)
                if previous is not None:
                    current.series = list(previous.series)
                    current.histograms = previous.histograms
                    current.mixed = previous.mixed or previous.interval != interval
                blocks.append(current)
            if parts[0] != "load":
                current.histograms = True
            while i < len(lines) and lines[i].startswith((" ", "\t")) and lines[i].strip():
                if "{{" in lines[i]:
                    current.histograms = True
                else:
                    current.series.append((*split_series(lines[i].strip()), interval))
                i += 1
            selectors = [sel for sel, _, _ in current.series]
            current.duplicates = len(set(selectors)) != len(selectors)
            continue
        if line.startswith("clear"):
            current = None
            continue
        if line.startswith("eval"):
            body = []
            while i < len(lines) and lines[i].startswith((" ", "\t")) and lines[i].strip():
                body.append(lines[i].strip())
                i += 1
            m = _EVAL.match(stripped)
            # info and warning annotations do not change a result; failures and histogram results are skipped
            if m is None or m.group(1) == "_fail" or any(b.startswith("expect fail") for b in body) \
                    or any("{{" in b for b in body) or _NATIVE.search(m.group(3)) \
                    or (current is not None and current.duplicates):
                skipped += 1
                continue
            if current is None:  # an eval with no load before it runs on an empty storage
                current = Block("1m")
                blocks.append(current)
            current.cases.append((m.group(2), m.group(3)))
            current.expected.append(body)
    return blocks, skipped


def _promtool(block: Block, tmp: Path) -> list[tuple[str, object]] | None:
    """promtool's answer per case: ("got", [(labels, value)...]) or ("err", message); None if unreadable."""
    spec = {
        "rule_files": ["empty.rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": block.interval,
            "input_series": [{"series": s, "values": v} for s, v, _ in block.series],
            "promql_expr_test": [{"expr": e, "eval_time": t, "exp_samples": [{"labels": '{never="matches"}',
                                                                              "value": 0}]}
                                 for t, e in block.cases],
        }],
    }
    (tmp / "empty.rules.yml").write_text("groups: []\n")
    (tmp / "case.test.yml").write_text(yaml.safe_dump(spec, sort_keys=False, width=100000))
    ran = subprocess.run(["promtool", "test", "rules", "case.test.yml"], cwd=tmp, capture_output=True, text=True,
                         timeout=300)
    found = _RESULT.findall(ran.stdout + ran.stderr)
    if len(found) != len(block.cases):
        return None
    out: list[tuple[str, object]] = []
    for _, _, err, got in found:
        if err:
            out.append(("err", err))
        elif got.strip() == "nil":
            out.append(("got", []))
        else:
            out.append(("got", sorted((labels_key(parse_metric(m[1])), float(m[2].replace("Inf", "inf")))
                                      for m in _SAMPLE.finditer(got))))
    return out


def _store(block: Block) -> SeriesStore:
    """The block's series as promtool loads them: up to the last 1-minute tick before the latest case."""
    store = SeriesStore(retention=math.inf)
    step = parse_duration(block.interval)
    until = loaded_until(max(_time(t) for t, _ in block.cases), 60.0)
    for selector, values, _ in block.series:
        name, labels = parse_series_line(selector)
        for k, value in enumerate(expand_series(values)):
            if k * step > until:
                break
            if value is STALE:
                store.mark_stale(name, labels, k * step)
            elif value is not None:
                store.append_one(name, labels, k * step, float(value))
    return store


def _time(text: str) -> float:
    return 0.0 if text == "0" else parse_duration(text)


_ORDER_DEPENDENT = re.compile(r"(?i)\b(sum|avg|stddev|stdvar)\b")


def _same(a: list[tuple[object, float]], b: list[tuple[object, float]], loose: bool = False) -> bool:
    """Equal bit for bit; within 1e-12 where promtool's own float result depends on the (random) order it
    loaded the series in (`loose`: sum, avg, stddev, stdvar over several series)."""
    return [k for k, _ in a] == [k for k, _ in b] and all(
        x == y or (math.isnan(x) and math.isnan(y)) or (loose and math.isclose(x, y, rel_tol=1e-12))
        for (_, x), (_, y) in zip(a, b, strict=True))


def run_file(path: Path, tmp: Path) -> FileCount:
    count = FileCount()
    blocks, count.skipped = parse_test_file(path.read_text())
    for block in blocks:
        if not block.cases:
            continue
        if block.mixed:
            count.skipped += len(block.cases)
            continue
        count.cases += len(block.cases)
        # three runs: where promtool's answer depends on the order it happens to load series in (float sums
        # of 1e100-scale values), runs can differ, and such a case has no single reference answer
        try:
            runs = [_promtool(block, tmp) for _ in range(3)]
        except subprocess.TimeoutExpired:
            continue
        reference = runs[0]
        if reference is None or any(r is None for r in runs):
            continue
        reference = [(k, a) if all(r[j] == (k, a) or (k == "got" and r[j][0] == "got" and _same(a, r[j][1]))  # type: ignore[arg-type,index]
                                   for r in runs[1:]) else ("unstable", a)
                     for j, (k, a) in enumerate(reference)]
        count.skipped += sum(1 for k, _ in reference if k == "unstable")
        try:
            store = _store(block)
        except (CoreError, ValueError):
            store = None
        for (t, expr), (kind, answer) in zip(block.cases, reference, strict=True):
            if kind != "got":
                continue
            count.answered += 1
            if store is None:
                count.failures.append(f"{t} {expr}: input series not readable")
                continue
            try:
                result = evaluate(parse(expr, "prometheus2"), _time(t), store, subquery_step=60.0)  # promtool 2.42
            except (CoreError, ValueError) as exc:
                count.failures.append(f"{t} {expr}: {exc}")
                continue
            samples = [({}, result.value)] if isinstance(result, Scalar) else [
                (s.labels, s.value) for s in result]  # type: ignore[union-attr]
            got = sorted((labels_key(lb), v) for lb, v in samples)
            if _same(got, answer, loose=bool(_ORDER_DEPENDENT.search(expr))):  # type: ignore[arg-type]
                count.passed += 1
            else:
                count.failures.append(f"{t} {expr}\n    promtool {answer}\n    ours     {got}")
    return count


def _expected(body: list[str]) -> list[tuple[object, float]] | None:
    """The suite's expected samples; None for what this bench does not read (strings, ranges)."""
    out = []
    for line in body:
        if line.startswith("expect"):
            if line.startswith(("expect string", "expect range", "expect fail")):
                return None
            continue
        selector, value = split_series(line.strip())
        if not value:  # a scalar
            selector, value = "{}", selector
        try:
            out.append((labels_key(parse_metric(selector)), float(value)))
        except (CoreError, ValueError):
            return None
    return sorted(out)


def run_file_expected(path: Path, semantics: str) -> FileCount:
    """The suite's own expectations (Prometheus 3's), all samples loaded, as promqltest does."""
    count = FileCount()
    blocks, count.skipped = parse_test_file(path.read_text())
    for block in blocks:
        if block.histograms:  # its expectations count the native histograms left out here
            count.skipped += len(block.cases)
            continue
        store = SeriesStore(retention=math.inf)
        try:
            for selector, values, interval in block.series:
                step = parse_duration(interval)
                name, labels = parse_series_line(selector)
                for k, value in enumerate(expand_series(values)):
                    if value is STALE:
                        store.mark_stale(name, labels, k * step)
                    elif value is not None:
                        store.append_one(name, labels, k * step, float(value))
        except (CoreError, ValueError):
            count.skipped += len(block.cases)
            continue
        for (t, expr), body in zip(block.cases, block.expected, strict=True):
            want = _expected(body)
            if want is None:
                count.skipped += 1
                continue
            count.cases += 1
            count.answered += 1
            try:
                parsed = parse(expr, semantics)  # type: ignore[arg-type]
                result = evaluate(parsed, _time(t), store, subquery_step=60.0)
            except (CoreError, ValueError) as exc:
                count.failures.append(f"{t} {expr}: {exc}")
                continue
            samples = [({}, result.value)] if isinstance(result, Scalar) else [
                (s.labels, s.value) for s in result]  # type: ignore[union-attr]
            got = sorted((labels_key(lb), v) for lb, v in samples)
            if [k for k, _ in got] == [k for k, _ in want] and all(
                    almost_equal(x, y) for (_, x), (_, y) in zip(got, want, strict=True)):
                count.passed += 1
            else:
                count.failures.append(f"{t} {expr}\n    expected {want}\n    ours     {got}")
    return count


def main() -> None:
    folder = Path(sys.argv[1])
    verbose = "-v" in sys.argv
    if "--expected" in sys.argv:
        semantics = sys.argv[sys.argv.index("--expected") + 1]
        print(f"{'file':<24} {'cases':>6} {'skipped':>8} {'passes (' + semantics + ')':>24}")
        cases = passed = 0
        for path in sorted(folder.glob("*.test")):
            c = run_file_expected(path, semantics)
            cases, passed = cases + c.cases, passed + c.passed
            print(f"{path.stem:<24} {c.cases:>6} {c.skipped:>8} {c.passed:>24}")
            if verbose:
                for f in c.failures:
                    print("  FAIL", f)
        print(f"{'total':<24} {cases:>6} {'':>8} {passed:>17} ({100.0 * passed / max(cases, 1):.1f} %)")
        return
    total = FileCount()
    print(f"{'file':<24} {'cases':>6} {'skipped':>8} {'promtool answers':>17} {'Watchkeeper passes':>19}")
    with tempfile.TemporaryDirectory() as tmpdir:
        for path in sorted(folder.glob("*.test")):
            c = run_file(path, Path(tmpdir))
            total.cases += c.cases
            total.skipped += c.skipped
            total.answered += c.answered
            total.passed += c.passed
            print(f"{path.stem:<24} {c.cases:>6} {c.skipped:>8} {c.answered:>17} {c.passed:>19}")
            if verbose:
                for f in c.failures:
                    print("  FAIL", f)
    pct = 100.0 * total.passed / max(total.answered, 1)
    print(f"{'total':<24} {total.cases:>6} {total.skipped:>8} {total.answered:>17} {total.passed:>13} ({pct:.1f} %)")


if __name__ == "__main__":
    main()
