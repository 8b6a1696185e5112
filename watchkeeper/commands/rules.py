"""`watchkeeper rules check FILE...` (like `promtool check rules`) and `watchkeeper rules test FILE...`
(promtool's rule unit-test format, run by Watchkeeper's own engine)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from watchkeeper.core.errors import CoreError
from watchkeeper.core.promql.evaluator import DEFAULT_SEMANTICS, SEMANTICS
from watchkeeper.core.rules.loader import RuleGroup, load_rule_files
from watchkeeper.core.rules.unit_plans import partition_problems, unit_plans, units_of
from watchkeeper.core.rules.unit_test import run_test_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rules", help="check rule files, run rule unit tests, backtest rules over stored samples",
        description="Prometheus rule files, unchanged: `check` validates them, `test` runs promtool-format "
                    "unit tests on Watchkeeper's engine.",
        epilog="examples:\n  watchkeeper rules check rules/*.yml\n"
               "  watchkeeper rules test tests/rules/alerts/*.test.yml\n"
               "  watchkeeper rules backtest tuned.rules.yml --from -1d --compare",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="rules_action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate rule files", epilog="example: watchkeeper rules check a.yml")
    check.add_argument("files", nargs="+")
    check.add_argument("--plan", action="store_true",
                       help="print how partitioned evaluation splits each rule (partial per samples partition, "
                            "merge stage)")
    _semantics_option(check)
    check.set_defaults(func=_check)
    test = actions.add_parser("test", help="run rule unit tests (promtool's format)",
                              epilog="example: watchkeeper rules test tests/rules/alerts/for_timing.test.yml")
    test.add_argument("files", nargs="+")
    _semantics_option(test)
    test.set_defaults(func=_test)
    from watchkeeper.backtest_command import add_parser as add_backtest

    add_backtest(actions)


def _semantics_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--semantics", choices=SEMANTICS, default=DEFAULT_SEMANTICS,
                   help=f"PromQL semantics of the expressions (default {DEFAULT_SEMANTICS}; promtool 2.42's "
                        "tests pass in prometheus2, promtool 3's in prometheus3)")


def _check(args: argparse.Namespace) -> int:
    def load(paths: list[str]) -> Sequence[Any]:
        groups = load_rule_files(paths, semantics=args.semantics)
        _partitioned_notes(groups, args.plan)
        return groups

    return check_files(args.files, load, "rules")


def _partitioned_notes(groups: list[RuleGroup], show_plan: bool) -> None:
    """What the worker's partitioned evaluation (the default) would refuse, and with --plan how each rule is
    cut into what every samples partition evaluates and what the merge stage combines."""
    units = units_of(groups)
    for problem in partition_problems(units, groups):
        print(f"  NOTE: {problem}")
    if show_plan:
        for up in unit_plans(units, groups):
            for g in up.groups:
                for r, p in zip(g.rules, up.plans[g.name], strict=True):
                    print(f"  plan {g.name}/{r.name}: {p.describe()}")


def check_files(files: list[str], load: Callable[[list[str]], Sequence[Any]], noun: str) -> int:
    """`promtool check rules` output for each file (rule files and anomaly rule files alike): 1 if any failed."""
    failed = 0
    for f in files:
        print(f"Checking {f}")
        try:
            groups = load([f])
        except (CoreError, OSError) as exc:
            print(f"  FAILED:\n{exc}\n")
            failed += 1
            continue
        except Exception as exc:  # one file's crash must not stop the files after it
            print(f"  FAILED:\ninternal error (please report): {type(exc).__name__}: {exc}\n")
            failed += 1
            continue
        print(f"  SUCCESS: {sum(len(g.rules) for g in groups)} {noun} found\n")
    return 1 if failed else 0


def _test(args: argparse.Namespace) -> int:
    failed = 0
    for f in args.files:
        print(f"Unit Testing:  {f}")
        res = run_test_file(f, args.semantics)
        if res.ok:
            print("  SUCCESS\n")
        else:
            failed += 1
            print("  FAILED:")
            print("\n".join(res.failures) + "\n")
    return 1 if failed else 0
