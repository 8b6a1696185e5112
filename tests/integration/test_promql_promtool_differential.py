"""Differential test: random series, every supported construct, Watchkeeper's evaluator vs promtool.

For each seed, random counters, gauges (with gaps, staleness markers, resets and non-integer values)
and histogram buckets are written as a promtool test file whose expectations are deliberately wrong;
promtool then prints what Prometheus 2.42 computed for every expression, and the evaluator must
return the same series with the same values. Exact equality, except where promtool's own result
depends on the order it happens to load series (float sums in aggregations): there 1e-12 relative.
topk/bottomk ties and fractional powers are left to the corpus, where they are deterministic.
"""

from __future__ import annotations

import math
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from watchkeeper.core.promql.evaluator import evaluate, parse
from watchkeeper.core.promql.series_notation import (
    STALE,
    expand_series,
    parse_duration,
    parse_metric,
    parse_series_line,
)
from watchkeeper.core.promql.series_store import SeriesStore
from watchkeeper.core.promql.values import Scalar, labels_key

ORDER_DEPENDENT = ("sum", "avg(", "stddev", "stdvar")
# Go's own sin, cos, atan2... (Cephes ports) and C's libm can differ in the last bit or two: compared to 1e-15.
INEXACT = ("sin", "cos", "tan", "atan2", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh")
_GOT = re.compile(r'expr: "(.*?)", time: (\S+),\n\s+exp: .*\n\s+got: (.*)')
_SAMPLE = re.compile(r"(\{[^}]*\}) (\S+?)(?:, |$)")


def _values(rnd: random.Random, n: int, counter: bool) -> str:
    out: list[str] = []
    v = float(rnd.choice([0, 5, 100]))
    for _ in range(n):
        r = rnd.random()
        if r < 0.08:
            out.append("_")
            continue
        if r < 0.11:
            out.append("stale")
            continue
        if counter:
            v = float(rnd.randint(0, 5)) if rnd.random() < 0.1 else v + rnd.choice([0, 1, 3, 7, 10.5])
        else:
            v = rnd.choice([-3.0, 0.0, 1.0, 2.5, 7.0, 0.1, 100.0, rnd.uniform(-10, 10)])
        out.append(repr(v))
    return " ".join(out)


def _scenario(seed: int) -> tuple[int, list[tuple[str, str]], list[str], list[int]]:
    rnd = random.Random(seed)
    interval = rnd.choice([15, 30, 60])
    n = rnd.randint(5, 40)
    series = [
        (f'{name}{{job="{job}", inst="{inst}"}}', _values(rnd, n, counter))
        for name, counter in (("c_total", True), ("g", False))
        for job in ("a", "b")
        for inst in ("1", "2")
        if rnd.random() < 0.85
    ]
    series += [('info{job="a", team="x"}', f"1x{n}"), ('info{job="b", team="y"}', f"1x{n // 2}")]
    series += [(f'h_bucket{{job="a", le="{le}"}}', _values(rnd, n, True)) for le in ("0.1", "1", "10", "+Inf")]
    rng = rnd.choice(["1m", "2m", "5m", "90s", "10m"])
    q = rnd.choice(["0", "0.25", "0.5", "0.9", "1"])
    exprs = [
        f"rate(c_total[{rng}])", f"increase(c_total[{rng}])", f"irate(c_total[{rng}])", f"delta(g[{rng}])",
        f"deriv(g[{rng}])", f"predict_linear(g[{rng}], 120)", f"avg_over_time(g[{rng}])",
        f"min_over_time(g[{rng}])", f"max_over_time(g[{rng}])", f"sum_over_time(g[{rng}])",
        f"count_over_time(g[{rng}])", f"last_over_time(g[{rng}])", f"quantile_over_time({q}, g[{rng}])",
        'absent(g{job="a"})', f'absent_over_time(g{{job="a"}}[{rng}])', "abs(g)", "clamp_min(g, 1)",
        "clamp_max(g, 2)", "round(g)", "round(g, 0.5)", "g offset 2m", "c_total offset 1m", "sum by (job) (g)",
        "avg(g)", "min without (inst) (g)", "max(g)", "count by (inst) (g)", f"quantile({q}, g)",
        "stddev by (job) (g)", "g * 2 - 1", "g / g", "g % 3", "g ^ 2", "g ^ -1", "g > 1", "g <= bool 2",
        "g == bool c_total", "g > c_total", "g + ignoring(inst) group_left sum by (job) (g)",
        "g * on(job) group_left(team) info", "info * on(job) group_right(team) g", "g and c_total", "g or info",
        "g unless on(job) info", f"histogram_quantile({q}, h_bucket)",
        f"histogram_quantile({q}, rate(h_bucket[{rng}]))", 'scalar(g{job="a",inst="1"}) * g',
        "vector(time()) - g", "-g", f"sum(rate(c_total[{rng}])) by (job)", 'g{inst!="1"}',
        'g{job=~"a|b", inst!~"2"}', f"avg_over_time(g[{rng}] offset 1m)", f"rate(c_total[{rng}] offset 3m)",
        f"changes(g[{rng}])", f"resets(c_total[{rng}])", f"changes(c_total[{rng}])",
        "ceil(g)", "floor(g)", "sqrt(c_total)", "exp(g)", "ln(c_total)", "log2(c_total)", "log10(c_total)", "sgn(g)",
        "clamp(g, -1, 2.5)", "timestamp(g)", "timestamp(c_total offset 1m)", "timestamp(sum(g))", "day_of_week(g)",
        "hour(c_total * 3600)", f"stddev_over_time(g[{rng}])", f"stdvar_over_time(g[{rng}])",
        f"present_over_time(g[{rng}])", f"idelta(g[{rng}])", f"holt_winters(g[{rng}], 0.3, 0.6)", "group by (job) (g)",
        "stdvar without (inst) (g)", 'count_values by (job) ("value", g)', "sort_desc(g)",
        'label_replace(g, "x", "$1-$2", "job", "(a)|(b)")', 'label_join(g, "id", ":", "job", "inst")',
        f"max_over_time(g[{rng}:1m])", f"rate(c_total[{rng}:30s])", f"avg_over_time(rate(c_total[1m])[{rng}:])",
        f"sum_over_time(g[{rng}:45s] offset 1m)", "g @ 100", "sum(g @ 200)", "rate(c_total[2m] @ 300)", "g @ end()",
        f"min_over_time(g[{rng}:1m] @ 400)",
        'g{job=~"(?i)A"}', "sin(g)", "cos(g)", "atan(g)", "tanh(g)", "g atan2 c_total", "asinh(g)",
    ]  # fmt: skip
    times = sorted(rnd.sample(range(0, n * interval + 400, 7), 3))
    return interval, series, exprs, times


def _promtool_results(tmp: Path, interval: int, series: list[tuple[str, str]], exprs: list[str],
                      times: list[int]) -> dict[tuple[str, float], str]:
    lines = ["rule_files: [empty.rules.yml]", f"evaluation_interval: {interval}s", "tests:",
             f"  - interval: {interval}s", "    input_series:"]
    for selector, values in series:
        lines += [f"      - series: '{selector}'", f"        values: '{values}'"]
    lines.append("    promql_expr_test:")
    for expr in exprs:
        for t in times:
            lines += [f"      - expr: '{expr}'", f"        eval_time: {t}s",
                      "        exp_samples: [{labels: '{never=\"matches\"}', value: 0}]"]
    (tmp / "empty.rules.yml").write_text("groups: []\n")
    (tmp / "diff.test.yml").write_text("\n".join(lines) + "\n")
    ran = subprocess.run(["promtool", "test", "rules", "diff.test.yml"], cwd=tmp, capture_output=True, text=True,
                         timeout=120)
    output = ran.stdout + ran.stderr
    return {(e.replace('\\"', '"'), parse_duration(t)): got for e, t, got in _GOT.findall(output)}


def _parse_got(text: str) -> list[tuple[tuple[tuple[str, str], ...], float]]:
    if text.strip() == "nil":
        return []
    return sorted((labels_key(parse_metric(m[1])), float(m[2].replace("Inf", "inf"))) for m in _SAMPLE.finditer(text))


@pytest.mark.parametrize("seed", range(1, 9))
def test_evaluator_matches_promtool_on_random_series(seed: int, tmp_path: Path) -> None:
    assert shutil.which("promtool"), "promtool (Debian package prometheus) is required: it is the reference"
    interval, series, exprs, times = _scenario(seed)
    reference = _promtool_results(tmp_path, interval, series, exprs, times)
    assert len(reference) == len(exprs) * len(times), "promtool did not report every expression"
    store = SeriesStore()
    for selector, values in series:
        name, labels = parse_series_line(selector)
        for i, value in enumerate(expand_series(values)):
            if value is STALE:
                store.mark_stale(name, labels, i * interval)
            elif value is not None:
                store.append_one(name, labels, i * interval, float(value))  # type: ignore[arg-type]
    failures = []
    for (expr, at), text in sorted(reference.items()):
        expected = _parse_got(text)
        # promtool 2.42 is Prometheus 2
        result = evaluate(parse(expr, "prometheus2"), at, store, subquery_step=interval)
        samples = [({}, result.value)] if isinstance(result, Scalar) else [(s.labels, s.value) for s in result]
        got = sorted((labels_key(lb), v) for lb, v in samples)  # type: ignore[arg-type]
        loose = any(a in expr for a in ORDER_DEPENDENT)
        inexact = any(a in expr for a in INEXACT)
        same = [k for k, _ in expected] == [k for k, _ in got] and all(
            x == y or (math.isnan(x) and math.isnan(y)) or (loose and math.isclose(x, y, rel_tol=1e-12))
            or (inexact and math.isclose(x, y, rel_tol=1e-15))
            for (_, x), (_, y) in zip(expected, got, strict=True)
        )
        if not same:
            failures.append(f"{expr} at {at}s\n  promtool {expected}\n  ours     {got}")
    assert not failures, "\n".join(failures)
