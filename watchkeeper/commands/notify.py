"""`watchkeeper notify check FILE...`: validate Alertmanager configuration files the way the notification
sink loads them, printed like `amtool check-config`; errors name the file, line and field."""

from __future__ import annotations

import argparse
import sys

from watchkeeper.core.errors import SourceError
from watchkeeper.core.notify.config import load_notify_config_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "notify", help="check Alertmanager configuration files (like amtool check-config)",
        epilog="example:\n  watchkeeper notify check alertmanager.yml",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate Alertmanager configuration files; exit 1 if any fails",
                               epilog="example: watchkeeper notify check alertmanager.yml")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    failed = 0
    for path in args.files:
        try:
            cfg = load_notify_config_file(path)
        except SourceError as exc:
            print(f"Checking '{path}'  FAILED: {exc}\n")
            failed += 1
            continue
        n_routes = _count(cfg.route) - 1
        intervals = len(cfg.time_intervals.intervals)
        print(f"Checking '{path}'  SUCCESS\nFound:\n - global config\n - route ({n_routes} child routes)\n"
              f" - {len(cfg.inhibit_rules)} inhibit rules\n - {len(cfg.receivers)} receivers\n"
              f" - {len(cfg.templates)} template files\n - {intervals} time intervals\n")
    if failed:
        print(f"watchkeeper: error: failed to validate {failed} file(s)", file=sys.stderr)
        return 1
    return 0


def _count(route: object) -> int:
    return 1 + sum(_count(r) for r in getattr(route, "routes", []))
