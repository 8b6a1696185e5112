"""Label-matcher regexes: Watchkeeper's RE2 translation against Go's own RE2, in promtool.

Random patterns built from the RE2 syntax the translator handles (inline and scoped flags anywhere,
POSIX and Perl classes, \\pL, \\Q...\\E, hex escapes, lazy and counted repetition, anchors, alternation)
select random label values (ASCII, non-ASCII letters, digits, newlines); promtool (Go's regexp, the
reference) says which series each `x{l=~"..."}` selects, and the evaluator must select the same. A
pattern Go refuses must be refused too. Deterministic: fixed seeds. Evaluated in the prometheus2 semantics,
promtool 2.42's (in Prometheus 3 `.` also matches a newline).
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from watchkeeper.core.errors import CoreError
from watchkeeper.core.promql.evaluator import evaluate, parse
from watchkeeper.core.promql.series_notation import parse_metric, parse_series_line
from watchkeeper.core.promql.series_store import SeriesStore

_ATOMS = ["a", "b", "A", "1", "_", "-", " ", "λ", "É", ".", r"\d", r"\w", r"\s", r"\D", r"\W", "[a-c]", "[^ab]",
          "[[:alpha:]]", "[[:digit:]_]", "[[:^space:]]", r"\pL", r"\p{Lu}", r"\x41", r"\.", "[λ-μ]", r"\Q.b\E",
          r"\PL", r"\pN", r"\101", "x{,2}", "[[:word:]]", r"[\d\s]", "(?P<n>a)", r"\z", r"\B", r"\x{3bb}"]
_QUANT = ["", "", "", "*", "+", "?", "{1,2}", "*?", "{2}"]
_FLAGS = ["(?i)", "(?s)", "(?i:", "(?-i)", "(?m)", "(?U)", "(?is:", "(?sm)"]
_CHARS = ["a", "A", "b", "B", "1", "_", "-", ".", " ", "\n", "λ", "É", "é"]
_RESULT = re.compile(r'expr: "((?:[^"\\]|\\.)*)", time: (\S+?),(?: err: (.*)|\n\s+exp: .*\n\s+got: (.*))')


def _pattern(rnd: random.Random, depth: int = 0) -> str:
    parts: list[str] = []
    for _ in range(rnd.randint(1, 4)):
        r = rnd.random()
        if r < 0.12 and depth < 2:
            inner = "|".join(_pattern(rnd, depth + 1) for _ in range(rnd.randint(1, 3)))
            parts.append(rnd.choice(["(", "(?:"]) + inner + ")" + rnd.choice(_QUANT))
        elif r < 0.22:
            flag = rnd.choice(_FLAGS)
            parts.append(flag + (_pattern(rnd, depth + 1) + ")" if flag.endswith(":") else ""))
        elif r < 0.26:
            parts.append(rnd.choice(["^", "$", r"\b"]))
        else:
            parts.append(rnd.choice(_ATOMS) + rnd.choice(_QUANT))
    return "".join(parts)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@pytest.mark.parametrize("seed", range(4))
def test_matchers_select_what_go_regexp_selects(seed: int, tmp_path: Path) -> None:
    assert shutil.which("promtool"), "promtool (Debian package prometheus) is required: it is the reference"
    rnd = random.Random(seed)
    values = sorted({"".join(rnd.choice(_CHARS) for _ in range(rnd.randint(0, 4))) for _ in range(30)})
    series = [f"x{{i={_quote(str(i))}, l={_quote(v)}}}" if v else f"x{{i={_quote(str(i))}}}"
              for i, v in enumerate(values)]
    patterns = [_pattern(rnd) for _ in range(100)]
    exprs = [f"x{{l=~{_quote(p)}}}" for p in patterns]
    spec = {"rule_files": ["empty.rules.yml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": [{"series": s, "values": "1"} for s in series],
        "promql_expr_test": [{"expr": e, "eval_time": "0s",
                              "exp_samples": [{"labels": '{never="matches"}', "value": 0}]} for e in exprs]}]}
    (tmp_path / "empty.rules.yml").write_text("groups: []\n")
    (tmp_path / "re.test.yml").write_text(yaml.safe_dump(spec, allow_unicode=True, width=100000))
    ran = subprocess.run(["promtool", "test", "rules", "re.test.yml"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    found = _RESULT.findall(ran.stdout + ran.stderr)
    assert len(found) == len(exprs), ran.stdout[-2000:] + ran.stderr[-2000:]
    store = SeriesStore()
    for s in series:
        name, labels = parse_series_line(s)
        store.append_one(name, labels, 0.0, 1.0)
    failures = []
    for pattern, expr, (_, _, err, got) in zip(patterns, exprs, found, strict=True):
        try:
            ours = sorted(s.labels["i"] for s in evaluate(parse(expr, "prometheus2"), 0.0, store))  # type: ignore[union-attr]
        except CoreError as exc:
            if not err:
                failures.append(f"{pattern!r}: Go accepts it, Watchkeeper refuses: {exc}")
            continue
        if err:
            failures.append(f"{pattern!r}: Go refuses it ({err}), Watchkeeper accepts")
            continue
        theirs = sorted(parse_metric(m)["i"] for m in re.findall(r"(\{[^}]*\}) \S+", got)) if got != "nil" else []
        if ours != theirs:
            failures.append(f"{pattern!r}: Go selects {[values[int(i)] for i in theirs]}, "
                            f"Watchkeeper {[values[int(i)] for i in ours]}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("seed", range(2))
def test_label_replace_captures_what_go_regexp_captures(seed: int, tmp_path: Path) -> None:
    """label_replace's regex (not checked by promql-parser) and its submatches, named so that groups inside
    the random parts do not shift the numbers. Only groups outside repetitions are read: inside one, a
    group that can match empty keeps RE2's last non-empty iteration (`(x*)+` on "xx" gives "xx") where
    Python's re keeps the final empty one ("") - a known difference, in captures only."""
    assert shutil.which("promtool"), "promtool (Debian package prometheus) is required: it is the reference"
    rnd = random.Random(1000 + seed)
    values = sorted({"".join(rnd.choice(_CHARS) for _ in range(rnd.randint(0, 5))) for _ in range(25)})
    series = [f"x{{i={_quote(str(i))}, l={_quote(v)}}}" if v else f"x{{i={_quote(str(i))}}}"
              for i, v in enumerate(values)]
    patterns = [f"(?P<first>{_pattern(rnd)})(?P<second>{_pattern(rnd)})?.*" for _ in range(60)]
    exprs = [f'label_replace(x, "m", "<$first|${{second}}x|$nothing>", "l", {_quote(p)})' for p in patterns]
    spec = {"rule_files": ["empty.rules.yml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": [{"series": s, "values": "1"} for s in series],
        "promql_expr_test": [{"expr": e, "eval_time": "0s",
                              "exp_samples": [{"labels": '{never="matches"}', "value": 0}]} for e in exprs]}]}
    (tmp_path / "empty.rules.yml").write_text("groups: []\n")
    (tmp_path / "lr.test.yml").write_text(yaml.safe_dump(spec, allow_unicode=True, width=100000))
    ran = subprocess.run(["promtool", "test", "rules", "lr.test.yml"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    found = _RESULT.findall(ran.stdout + ran.stderr)
    assert len(found) == len(exprs), ran.stdout[-2000:] + ran.stderr[-2000:]
    store = SeriesStore()
    for s in series:
        name, labels = parse_series_line(s)
        store.append_one(name, labels, 0.0, 1.0)
    failures = []
    for pattern, expr, (_, _, err, got) in zip(patterns, exprs, found, strict=True):
        try:
            result = evaluate(parse(expr, "prometheus2"), 0.0, store)
            ours = sorted((s.labels["i"], s.labels.get("m", "")) for s in result)  # type: ignore[union-attr]
        except CoreError as exc:
            if not err:
                failures.append(f"{pattern!r}: Go accepts it, Watchkeeper refuses: {exc}")
            continue
        if err:
            failures.append(f"{pattern!r}: Go refuses it ({err}), Watchkeeper accepts")
            continue
        theirs = sorted((lb["i"], lb.get("m", "")) for lb in
                        (parse_metric(m) for m in re.findall(r"(\{[^}]*\}) \S+", got)))
        if ours != theirs:
            diff = [(values[int(i)], a, b) for (i, a), (_, b) in zip(theirs, ours, strict=True) if a != b]
            failures.append(f"{pattern!r}: (value, Go, Watchkeeper) {diff[:3]}")
    assert not failures, "\n".join(failures)
