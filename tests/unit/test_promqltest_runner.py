"""`watchkeeper promql test`: the promqltest language run natively, on Watchkeeper's own scripts under
tests/promql (each DSL feature), on broken expectations (they must fail), and, when WK_PROMQLTEST_DIR
points at a checkout's promql/promqltest/testdata, on Prometheus' own suite (not in this repository)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from watchkeeper.cli import main
from watchkeeper.core.promql.promqltest import Eval, Load, PromQLTestError, parse_script, run_script

SCRIPTS = Path(__file__).resolve().parents[1] / "promql"
# A script named for one semantics holds results that differ between Prometheus 2 and 3.
ONLY = {"prometheus2_closed.test": "prometheus2", "prometheus3_left_open.test": "prometheus3",
        "prometheus2_aggregation.test": "prometheus2", "prometheus3_aggregation.test": "prometheus3",
        "prometheus3_extended_ranges.test": "prometheus3"}
OTHER = {"prometheus2": "prometheus3", "prometheus3": "prometheus2"}


def _cases() -> list[tuple[Path, str]]:
    out = []
    for path in sorted(SCRIPTS.glob("*.test")):
        modes = [ONLY[path.name]] if path.name in ONLY else ["prometheus2", "prometheus3"]
        out += [(path, m) for m in modes]
    return out


@pytest.mark.parametrize(("path", "semantics"), _cases(), ids=lambda v: getattr(v, "name", v))
def test_own_scripts_pass(path: Path, semantics: str) -> None:
    res = run_script(path.read_text(), semantics)  # type: ignore[arg-type]
    assert [c for c in res.cases if c.outcome == "failed"] == []
    assert res.count("passed") > 0


@pytest.mark.parametrize("name", sorted(ONLY))
def test_semantics_scripts_fail_in_the_other_mode(name: str) -> None:
    """The boundary cases really tell the two semantics apart: each of them fails in the other mode."""
    res = run_script((SCRIPTS / name).read_text(), OTHER[ONLY[name]])  # type: ignore[arg-type]
    boundaries = ["count_over_time(metric[5m])", "metric[3m]", "sparse"]
    differ = {"left_open": boundaries, "closed": boundaries,
              "aggregation": ["sum(big)", "avg(big)", "stddev(odd)", "many_side > on(job) one_side"],
              # prometheus2 refuses the modifiers, and its closed ranges hold one more point
              "extended_ranges": ["increase(c_total[2m] anchored)", "rate(c_total[2m] anchored)",
                                  "delta(g[2m] anchored)", "changes(g[2m] anchored)", "changes(g[2m])",
                                  "resets(c_total[1m] anchored)", "resets(c_total[1m])",
                                  "increase(c_total[1m30s] smoothed)", "g smoothed", "g smoothed", "g smoothed"]}
    kind = name.split("_", 1)[1].removesuffix(".test")
    assert [c.expr for c in res.cases if c.outcome == "failed"] == differ[kind]


def test_native_histograms_are_skipped_and_counted() -> None:
    res = run_script((SCRIPTS / "native_histograms_skipped.test").read_text())
    assert (res.count("passed"), res.count("failed"), res.count("skipped")) == (1, 0, 2)
    assert all("native histograms" in c.detail for c in res.cases if c.outcome == "skipped")


def test_parse_expanding_notation_and_commands() -> None:
    cmds = parse_script('load 30s\n  a{x="1"} 1+2x2 _ stale\n\neval range from 0 to 1m step 30s a\n  a{x="1"} 1 3 5\n')
    load, ev = cmds
    assert isinstance(load, Load) and load.interval == 30.0
    assert load.series[0][0] == {"__name__": "a", "x": "1"}
    assert [str(v) for v in load.series[0][1]] == ["1.0", "3.0", "5.0", "None", "Stale.STALE"]
    assert isinstance(ev, Eval) and (ev.start, ev.end, ev.step) == (0.0, 60.0, 30.0)


@pytest.mark.parametrize(("script", "why"), [
    ("load 1m\n  a 1 2\n\neval instant at 1m a\n  a 3\n", "expected 3.0 for a{}, got 2.0"),
    ("load 1m\n  a 1 2\n\neval instant at 1m a\n", "unexpected a{} 2.0"),
    ("load 1m\n  a 1 2\n\neval instant at 1m a\n  a 2\n  b 1\n", "expected b{} 1.0, not in the result"),
    ("load 1m\n  a 1\n  b 2\n\neval_ordered instant at 0m sort_desc({__name__=~\"a|b\"})\n  a 1\n  b 2\n",
     "expected b{} at position 2, got it at 1"),
    ("load 1m\n  a 1 2\n\neval_fail instant at 1m a\n", "expected an error, got a result"),
    ("load 1m\n  a 1 2\n\neval instant at 1m sum(a)\n  7\n", "expected a scalar, got a vector"),
    ("load 1m\n  a 1 2 3\n\neval range from 0 to 2m step 1m a\n  a 1 _ 3\n", "expected 2 points for a{}"),
])
def test_wrong_expectations_fail(script: str, why: str) -> None:
    (case,) = run_script(script).cases
    assert case.outcome == "failed" and why in case.detail


@pytest.mark.parametrize("script", ["lod 1m\n  a 1\n", "load 1m\n  a 1 zz\n", "eval at 1m a\n",
                                    "load 1m\n  a 1\n\neval instant at 1m a\n  a 1 2\n"])
def test_malformed_scripts_name_the_line(script: str) -> None:
    with pytest.raises(PromQLTestError, match=r"line \d+"):
        parse_script(script)


def test_cli_reports_per_file_and_exits_by_outcome(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = SCRIPTS / "load_and_eval.test"
    assert main(["promql", "test", str(good)]) == 0
    out = capsys.readouterr().out
    assert f"{good}: 12 passed, 0 failed, 0 skipped" in out and "total (" in out
    bad = tmp_path / "bad.test"
    bad.write_text("load 1m\n  a 1\n\neval instant at 0m a\n  a 2\n")
    assert main(["promql", "test", "--semantics", "prometheus2", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "bad.test: 0 passed, 1 failed, 0 skipped" in out and "FAILED line 4: a" in out
    assert "total (prometheus2): 12 passed, 1 failed, 0 skipped" in out


UPSTREAM = os.environ.get("WK_PROMQLTEST_DIR")
# Measured on prometheus/prometheus main of 2026-08-21 (docs/rules.md, "Alert and recording rules": 97.3 % and
# 81.2 %): a floor so that a regression shows, not a target.
UPSTREAM_FLOOR = {"prometheus2": 0.81, "prometheus3": 0.97}


@pytest.mark.skipif(not UPSTREAM, reason="set WK_PROMQLTEST_DIR to promql/promqltest/testdata of a checkout")
@pytest.mark.parametrize("semantics", ["prometheus2", "prometheus3"])
def test_upstream_suite(semantics: str) -> None:
    files = sorted(Path(str(UPSTREAM)).glob("*.test"))
    assert files, f"no *.test files in {UPSTREAM}"
    passed = failed = 0
    for path in files:
        res = run_script(path.read_text(), semantics)  # type: ignore[arg-type]  # every file must parse
        passed, failed = passed + res.count("passed"), failed + res.count("failed")
    assert passed / (passed + failed) >= UPSTREAM_FLOOR[semantics]


@pytest.mark.parametrize(("path", "semantics"), _cases(), ids=lambda v: getattr(v, "name", v))
def test_own_scripts_pass_partitioned(path: Path, semantics: str) -> None:
    """Every instant query again through plan/partial/merge over the series split in 3 partitions."""
    res = run_script(path.read_text(), semantics, partitions=3)  # type: ignore[arg-type]
    assert [c for c in res.cases if c.outcome == "failed"] == []


# Measured with the partitioned path on the same checkout: prometheus3 1,390/1,415 (the single store's
# failures exactly), prometheus2 1,166/1,394 (one more: avg(data{test="ten"}), see core.promql.sharding).
@pytest.mark.skipif(not UPSTREAM, reason="set WK_PROMQLTEST_DIR to promql/promqltest/testdata of a checkout")
@pytest.mark.parametrize("semantics", ["prometheus2", "prometheus3"])
def test_upstream_suite_partitioned_fails_where_single_store_fails(semantics: str) -> None:
    files = sorted(Path(str(UPSTREAM)).glob("*.test"))
    assert files, f"no *.test files in {UPSTREAM}"
    differ = []
    for path in files:
        single = run_script(path.read_text(), semantics)  # type: ignore[arg-type]
        split = run_script(path.read_text(), semantics, partitions=3)  # type: ignore[arg-type]
        for a, b in zip(single.cases, split.cases, strict=True):
            if a.outcome != b.outcome:
                differ.append((path.name, a.line, a.expr, a.outcome, b.outcome))
    # prometheus2's avg: the single store's incremental mean loses 2.5 to 0.0 on data{test="ten"},
    # the partitioned Kahan total does not
    allowed = set()
    if semantics == "prometheus2":
        allowed = {("aggregators.test", 'avg(data{test="ten"})', "failed", "passed")}
    assert {(f, e, a, b) for f, _, e, a, b in differ} <= allowed, differ
