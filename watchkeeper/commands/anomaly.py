"""`watchkeeper anomaly check FILE...`: validate anomaly rule files (`anomaly:` groups) before a worker
loads them, with the same errors the worker would stop on (file, line, group, rule).

`watchkeeper anomaly replay FILE --alert NAME < series.csv`: one rule over a recorded series (CSV
`timestamp,value`), printing the alert transitions the worker would publish for it, so a threshold and
a `for` can be tried on history before they page anyone. Same scoring code as the agent."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from watchkeeper.commands.rules import check_files
from watchkeeper.core.anomaly_rules import load_anomaly_files
from watchkeeper.core.anomaly_scoring import AnomalyScorer
from watchkeeper.core.detectors.csv_rows import RowError, is_header, parse_timestamp, parse_value, split_row
from watchkeeper.core.errors import CoreError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "anomaly", help="check anomaly rule files",
        description="Anomaly rule files (`anomaly:` groups naming a selector, a detector and a threshold): "
                    "`check` validates them.",
        epilog="examples:\n  watchkeeper anomaly check rules/anomaly.yml\n"
               "  watchkeeper anomaly replay rules/anomaly.yml --alert LatencyAnomaly --label job=api < p95.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="anomaly_action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate anomaly rule files",
                               epilog="example: watchkeeper anomaly check rules/anomaly.yml")
    check.add_argument("files", nargs="+")
    check.set_defaults(func=_check)
    replay = actions.add_parser(
        "replay", help="replay a CSV series through one rule and print its alert transitions",
        description="Read CSV `timestamp,value` on stdin (the series the rule would score: a window field or "
                    "raw samples), write CSV `event_time,state,alertname,value` of each alert transition.",
        epilog="example: watchkeeper anomaly replay rules/anomaly.yml --alert LatencyAnomaly --label job=api < p95.csv")
    replay.add_argument("file")
    replay.add_argument("--alert", required=True, help="the rule's alert name")
    replay.add_argument("--label", action="append", default=[], metavar="K=V",
                        help="a label of the replayed series (repeatable; used in the alert's labels)")
    replay.set_defaults(func=_replay)


def _check(args: argparse.Namespace) -> int:
    return check_files(args.files, load_anomaly_files, "anomaly rules")


def _replay(args: argparse.Namespace) -> int:
    try:
        rules = [r for g in load_anomaly_files([args.file]) for r in g.rules if r.alert == args.alert]
    except (CoreError, OSError) as exc:
        print(f"watchkeeper anomaly replay: error: {exc}", file=sys.stderr)
        return 2
    if not rules:
        print(f"watchkeeper anomaly replay: error: no rule with alert {args.alert!r} in {args.file}", file=sys.stderr)
        return 2
    labels = dict(item.split("=", 1) for item in args.label if "=" in item)
    ts: list[float] = []
    values: list[float] = []
    for n, line in enumerate(sys.stdin, 1):
        line = line.strip()
        if not line or (n == 1 and is_header(line)):
            continue
        try:
            t, v = split_row(line)
            row = parse_timestamp(t), parse_value(v)
        except RowError as exc:
            print(f"line {n}: {exc} (skipped)", file=sys.stderr)
            continue
        ts.append(row[0])
        values.append(row[1])
    out = sys.stdout
    out.write("event_time,state,alertname,value\n")
    for rule in rules:  # an alert name may be used in several groups
        res = AnomalyScorer().score(rule, "replay", labels, np.array(ts), np.array(values))
        for e in res.events:
            out.write(f"{e.event_time:.17g},{e.state},{e.rule},{e.value:.6g}\n")
        if res.skipped:
            print(f"{res.skipped} rows not after the previous timestamp were skipped", file=sys.stderr)
    return 0
