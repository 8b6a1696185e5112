"""`watchkeeper anomaly check FILE...`: validate anomaly rule files (`anomaly:` groups) before a worker
loads them, with the same errors the worker would stop on (file, line, group, rule)."""

from __future__ import annotations

import argparse

from core.anomaly_rules import load_anomaly_files
from core.errors import CoreError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "anomaly", help="check anomaly rule files",
        description="Anomaly rule files (`anomaly:` groups naming a selector, a detector and a threshold): "
                    "`check` validates them.",
        epilog="example:\n  watchkeeper anomaly check rules/anomaly.yml",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="anomaly_action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate anomaly rule files",
                               epilog="example: watchkeeper anomaly check rules/anomaly.yml")
    check.add_argument("files", nargs="+")
    check.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    failed = 0
    for f in args.files:
        print(f"Checking {f}")
        try:
            groups = load_anomaly_files([f])
        except (CoreError, OSError) as exc:
            print(f"  FAILED:\n{exc}\n")
            failed += 1
            continue
        print(f"  SUCCESS: {sum(len(g.rules) for g in groups)} anomaly rules found\n")
    return 1 if failed else 0
