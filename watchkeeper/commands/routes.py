"""`watchkeeper routes test|show`: which receivers an alert reaches, as `amtool config routes test` prints
it (same output, same exit codes), plus `--inhibited-by`: would a firing alert with those labels inhibit it."""

from __future__ import annotations

import argparse
import sys

from watchkeeper.core.notify.config import NotifyConfig, load_notify_config_file
from watchkeeper.core.notify.dispatch import PRIORITY
from watchkeeper.core.notify.inhibit import inhibiting_rules
from watchkeeper.core.notify.matchers import MatcherError, matchers_str, parse_matcher
from watchkeeper.core.notify.route_tree import matching_tree, receivers, route_tree
from watchkeeper.plumbing.errors import WatchkeeperError

EXAMPLE = ("examples:\n"
           "  watchkeeper routes test --config alertmanager.yml service=database severity=critical\n"
           "  watchkeeper routes test --config alertmanager.yml --tree --verify-receivers team-DB-pager "
           "service=database\n"
           "  watchkeeper routes test --config alertmanager.yml alertname=Slow service=db "
           "--inhibited-by alertname=Down service=db severity=critical\n"
           "  watchkeeper routes show --config alertmanager.yml")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "routes", help="test which receivers an alert reaches (like amtool config routes)",
        description="Route an alert with the given labels through an Alertmanager configuration's route tree, "
                    "exactly as `amtool config routes test` does.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    test = actions.add_parser(
        "test", help="print the receivers an alert with these labels reaches", epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Prints the receivers, comma-separated, in route-tree order. Exit 1 when "
                    "--verify-receivers differs from them.")
    _config_arg(test)
    test.add_argument("labels", nargs="*", metavar="LABEL=VALUE", help="the alert's labels")
    test.add_argument("--tree", action="store_true", help="also print the matching routes tree")
    test.add_argument("--verify-receivers", "--verify.receivers", dest="verify", default="", metavar="R1,R2",
                      help="fail (exit 1) unless the alert reaches exactly these receivers, in this order")
    test.add_argument("--inhibited-by", nargs="+", default=None, metavar="LABEL=VALUE",
                      help="labels of a firing alert: say whether it would inhibit this one (put it last)")
    test.set_defaults(func=_test)
    show = actions.add_parser("show", help="print the routing tree", epilog=EXAMPLE,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    _config_arg(show)
    show.set_defaults(func=_show)


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "--config.file", dest="am_config", required=True, metavar="FILE",
                   help="an Alertmanager configuration file (alertmanager.yml)")


def _labels(texts: list[str]) -> dict[str, str]:
    """amtool's parseLabels: each argument a matcher that must be `name=value` (quotes optional)."""
    out: dict[str, str] = {}
    for t in texts:
        try:
            m = parse_matcher(t)
        except MatcherError as exc:
            raise WatchkeeperError(f"Failed to parse labels: {exc}") from None
        if m.op != "=":
            raise WatchkeeperError("Failed to parse labels: labels must be specified as key=value pairs")
        out[m.name] = m.value
    return out


def _with_priority(labels: dict[str, str]) -> dict[str, str]:
    """The `priority` label the notification sink derives from `severity` (dispatch.with_priority), so the
    answer is the route the sink takes; amtool's answer is the same unless a route matches `priority`."""
    prio = PRIORITY.get(labels.get("severity", "").lower())
    return {**labels, "priority": prio} if prio and "priority" not in labels else labels


def _load(path: str) -> NotifyConfig:
    return load_notify_config_file(path)


def _test(args: argparse.Namespace) -> int:
    cfg = _load(args.am_config)
    labels = _with_priority(_labels(args.labels))
    inhibitor = _with_priority(_labels(args.inhibited_by)) if args.inhibited_by is not None else None
    if args.tree:
        sys.stdout.write("Matching routes:\n" + matching_tree(cfg.route, labels) + "\n\n")
    slug = ",".join(receivers(cfg.route, labels))
    print(slug)
    if inhibitor is not None:
        found = inhibiting_rules(cfg.inhibit_rules, labels, inhibitor)
        if found:
            for i in found:
                r = cfg.inhibit_rules[i]
                print(f"inhibited by inhibit_rules[{i}]: source_matchers {matchers_str(r.source)} "
                      f"target_matchers {matchers_str(r.target)} equal [{', '.join(r.equal)}]")
        else:
            print("not inhibited by an alert with " + matchers_str(
                [parse_matcher(t) for t in args.inhibited_by]))
    if args.verify and args.verify != slug:
        print("WARNING: Expected receivers did not match resolved receivers.")
        return 1
    return 0


def _show(args: argparse.Namespace) -> int:
    cfg = _load(args.am_config)
    sys.stdout.write("Routing tree:\n" + route_tree(cfg.route) + "\n")
    return 0
