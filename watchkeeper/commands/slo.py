"""`watchkeeper slo generate|check`: Sloth `prometheus/v1` specs to Prometheus rule files."""

from __future__ import annotations

import argparse
import sys

from watchkeeper import __version__
from watchkeeper.core.slo import GeneratorInfo, generate_rule_groups, load_slo_spec_file, rules_yaml
from watchkeeper.core.slo.go_format import parse_prom_duration
from watchkeeper.plumbing.errors import WatchkeeperError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "slo",
        help="SLOs from Sloth prometheus/v1 specs",
        description="Generate the recording and multi-window multi-burn-rate alert rules Sloth would generate.",
        epilog="example: watchkeeper slo generate slos/myservice.yml -o rules/myservice-slo.rules.yml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="slo_command", metavar="ACTION", required=True)
    gen = sub.add_parser(
        "generate",
        help="write the Prometheus rule file for a spec",
        epilog="example: watchkeeper slo generate slos/myservice.yml -o rules.yml --extra-labels team=sre",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gen.add_argument("spec", help="Sloth prometheus/v1 spec file")
    gen.add_argument("-o", "--output", help="rule file to write (default: stdout)")
    gen.add_argument("--period", default="30d", help="SLO period: 30d (default) or 28d")
    gen.add_argument(
        "--extra-labels", "-l", action="append", default=[], metavar="K=V", help="label added to every SLO rule"
    )
    gen.add_argument("--sloth-version", default=f"watchkeeper-{__version__}", help="value of sloth_version")
    gen.set_defaults(func=_generate)
    check = sub.add_parser(
        "check",
        help="validate specs without writing anything",
        epilog="example: watchkeeper slo check slos/*.yml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("specs", nargs="+")
    check.set_defaults(func=_check)


def _generate(args: argparse.Namespace) -> int:
    try:
        period = parse_prom_duration(args.period)
    except ValueError as exc:
        raise WatchkeeperError(f"--period: {exc}") from None
    extra: dict[str, str] = {}
    for item in args.extra_labels:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise WatchkeeperError(f"--extra-labels: expected KEY=VALUE, got {item!r}")
        extra[key] = value
    spec = load_slo_spec_file(args.spec)
    try:
        groups = generate_rule_groups(spec, GeneratorInfo(version=args.sloth_version), period, extra)
    except ValueError as exc:
        raise WatchkeeperError(f"--period: {exc}") from None
    text = rules_yaml(groups, source=args.spec)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
        print(f"wrote {sum(len(g['rules']) for g in groups)} rules in {len(groups)} groups to {args.output}",
              file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _check(args: argparse.Namespace) -> int:
    for path in args.specs:
        spec = load_slo_spec_file(path)
        print(f"{path}: OK, service {spec.service}, {len(spec.slos)} SLOs")
    return 0
