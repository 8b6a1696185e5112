"""`watchkeeper promql test FILE.test...`: Prometheus' PromQL test scripts (the promqltest language of
promql/promqltest/testdata) run on Watchkeeper's evaluator, with a passed/failed/skipped count per file."""

from __future__ import annotations

import argparse

from watchkeeper.core.errors import CoreError
from watchkeeper.core.promql.evaluator import DEFAULT_SEMANTICS, SEMANTICS
from watchkeeper.core.promql.promqltest import run_script


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "promql", help="run PromQL test scripts (Prometheus' promqltest format)",
        description="PromQL test scripts in the language of Prometheus' promql/promqltest/testdata/*.test "
                    "(load, clear, eval instant|range, eval_fail, eval_ordered, expect ...), evaluated by "
                    "Watchkeeper. Native-histogram cases are skipped and counted.",
        epilog="example:\n  watchkeeper promql test tests/promql/*.test",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="promql_action", metavar="ACTION", required=True)
    test = actions.add_parser("test", help="run promqltest scripts",
                              epilog="example: watchkeeper promql test --semantics prometheus2 tests/promql/*.test")
    test.add_argument("files", nargs="+")
    test.add_argument("--semantics", choices=SEMANTICS, default=None,
                      help="PromQL semantics (default: the rules default, prometheus3 or prometheus2)")
    test.add_argument("-v", "--verbose", action="store_true", help="also list the passed and skipped cases")
    test.set_defaults(func=_test)


def _test(args: argparse.Namespace) -> int:
    semantics = args.semantics or DEFAULT_SEMANTICS
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    broken = 0
    for f in args.files:
        try:
            with open(f, encoding="utf-8") as fh:
                res = run_script(fh.read(), semantics)
        except (CoreError, OSError) as exc:
            print(f"{f}: ERROR {exc}")
            broken += 1
            continue
        counts = {k: res.count(k) for k in totals}
        for k in totals:
            totals[k] += counts[k]
        print(f"{f}: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
        for c in res.cases:
            if c.outcome == "failed" or args.verbose:
                print(f"  {c.outcome.upper()} line {c.line}: {c.expr}" + (f"\n    {c.detail}" if c.detail else ""))
    n = totals["passed"] + totals["failed"]
    pct = f" ({100.0 * totals['passed'] / n:.1f} % of those run)" if n else ""
    print(f"total ({semantics}): {totals['passed']} passed, {totals['failed']} failed, "
          f"{totals['skipped']} skipped{pct}" + (f", {broken} file(s) unreadable" if broken else ""))
    return 1 if totals["failed"] or broken else 0
