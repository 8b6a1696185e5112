"""`watchkeeper rules backtest RULE_FILES... --from T --to T [--compare] [--format md|html]`: what these
rules would have done over the samples stored in ClickHouse (see `reports.backtest_report`)."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from watchkeeper.agents.rules_wiring import RulesConfigError, loaded_rules, slo_rule_groups
from watchkeeper.core.errors import CoreError
from watchkeeper.core.promql.series_notation import SeriesNotationError, parse_duration
from watchkeeper.core.rules.backtest import DEFAULT_FLAP_WINDOW
from watchkeeper.plumbing.config import load_config
from watchkeeper.plumbing.errors import WatchkeeperError
from watchkeeper.reports.backtest_report import auto_warmup, build_document, run_backtest, text_report
from watchkeeper.reports.clickhouse_reader import get_reader
from watchkeeper.reports.render import write_html, write_markdown
from watchkeeper.reports.timerange import parse_range

EXAMPLES = """examples:
  watchkeeper rules backtest tuned.rules.yml --from -1d --to now
  watchkeeper rules backtest tuned.rules.yml --from -7d --compare --format html -o backtest.html
  watchkeeper rules backtest --slo-spec slo/api.yml --from 2026-12-01 --to 2026-12-02
  watchkeeper rules backtest examples/rules/demo-anomaly.yml --from -7d   # anomaly: rules too"""


def add_parser(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser(
        "backtest", help="replay rule files over the samples stored in ClickHouse",
        description="Evaluate alerting and recording rules, anomaly rules and Sloth SLO specs over stored samples "
                    "through the worker's own rules engine and anomaly scorer, and list the alerts they would have "
                    "given.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p._negative_number_matcher = re.compile(r"^-\d+(\.\d+)?[smhdw]?$")  # `--from -1d` is a value
    p.add_argument("files", nargs="*", metavar="RULE_FILE",
                   help="Prometheus rule files and `anomaly:` rule files (default: the config's)")
    p.add_argument("--slo-spec", action="append", default=[], help="a Sloth prometheus/v1 spec (repeat)")
    p.add_argument("--from", dest="start", help="start: ISO time, or -1d from now (default: 1 day before --to)")
    p.add_argument("--to", dest="end", help="end: ISO time or now (default now)")
    p.add_argument("--warmup", default="auto",
                   help="evaluate this long before --from so alerts already pending or firing then are "
                        "(default auto: the longest for + keep_firing_for; 0 to start cold)")
    p.add_argument("--compare", action="store_true", help="diff with the alerts recorded live in the alerts table")
    p.add_argument("--format", choices=["md", "html"], help="also write a report with a chart per rule")
    p.add_argument("-o", "--output", help="report file (default backtest-report.<format>)")
    p.add_argument("--no-charts", action="store_true", help="report without charts (faster)")
    p.add_argument("--flap-window", default="30m", help="re-firing this soon after resolving is a flap (default 30m)")
    p.add_argument("--config", help="watchkeeper.yaml (default ./watchkeeper.yaml if present)")
    p.add_argument("--dsn", help="ClickHouse to read (default: the config's query URL)")
    p.set_defaults(func=run)


def _seconds(text: str, what: str) -> float:
    try:
        return parse_duration(text)
    except SeriesNotationError as exc:
        raise WatchkeeperError(f"{what}: {exc} (use e.g. 30m, 1h)") from None


def _is_anomaly_file(path: str) -> bool:
    """An `anomaly:` rule file rather than a Prometheus one (an unreadable file is left to the loader)."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and "anomaly" in data and "groups" not in data


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    try:
        tr = parse_range(args.start, args.end, datetime.now(UTC), timedelta(days=1))
    except ValueError as exc:
        raise WatchkeeperError(str(exc)) from None
    named = [*args.files, *args.slo_spec]
    given = args.files or ([] if named else [str(cfg.resolve(f)) for f in [*cfg.rules.files, *cfg.anomaly.files]])
    specs = args.slo_spec or ([] if named else [str(cfg.resolve(f)) for f in cfg.rules.slo_specs])
    if not given and not specs:
        raise WatchkeeperError("rules backtest: name rule files (or --slo-spec), or list them under rules.files "
                               "in watchkeeper.yaml")
    from watchkeeper.core.anomaly_rules import load_anomaly_files
    from watchkeeper.core.rules.loader import load_rule_files

    anomaly_files = [f for f in given if _is_anomaly_file(f)]
    files = [f for f in given if f not in anomaly_files]
    semantics = cfg.rules.semantics  # as the worker evaluates them
    try:
        groups = load_rule_files(files, semantics=semantics) + slo_rule_groups(specs, cfg.rules.slo_period_days,
                                                                               semantics)
        anomaly = [r for g in load_anomaly_files(anomaly_files) for r in g.rules]
    except (CoreError, OSError) as exc:
        raise RulesConfigError(f"rule files: {exc}") from None
    if not groups and not anomaly:
        raise WatchkeeperError("rules backtest: the rule files hold no groups")
    loaded = loaded_rules(groups, cfg.rules.shards, cfg.windows.allowed_lateness, semantics)
    warmup = auto_warmup(loaded, anomaly) if args.warmup == "auto" else _seconds(args.warmup, "--warmup")
    client = get_reader(args.dsn or cfg.clickhouse_reader_dsn)
    charts = bool(args.format) and not args.no_charts
    start, end = tr.start.timestamp(), tr.end.timestamp()
    console = Console(file=sys.stderr)
    with Progress(TextColumn("replaying {task.fields[at]}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True,
                  disable=not console.is_terminal) as bar:
        task = bar.add_task("replay", total=1.0, at="")

        def progress(wm: float, origin: float, stop: float) -> None:
            done = min(1.0, max(0.0, (wm - origin) / max(stop - origin, 1.0)))
            bar.update(task, completed=done, at=datetime.fromtimestamp(wm, UTC).strftime("%Y-%m-%d %H:%M"))

        result = run_backtest(client, loaded, start, end, cfg.windows.allowed_lateness, warmup,
                              with_compare=args.compare, charts=charts,
                              flap_window=_seconds(args.flap_window, "--flap-window") or DEFAULT_FLAP_WINDOW,
                              progress=progress, anomaly=anomaly)
    names = [*files, *anomaly_files, *specs]
    doc = build_document(result, names, charts=charts)
    print(text_report(doc))
    if args.format:
        out = Path(args.output or f"backtest-report.{args.format}")
        written = write_html(doc, out) if args.format == "html" else write_markdown(doc, out)
        print(f"wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
    return 0
