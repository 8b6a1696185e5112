"""`watchkeeper report slo|trend|capacity`: reports from ClickHouse as Markdown or HTML with PNG charts."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from watchkeeper.plumbing.config import load_config
from watchkeeper.plumbing.errors import WatchkeeperError
from watchkeeper.reports.capacity_report import build_capacity_report
from watchkeeper.reports.clickhouse_reader import get_reader
from watchkeeper.reports.document import Document
from watchkeeper.reports.query_progress import QueryRunner
from watchkeeper.reports.render import write_html, write_markdown
from watchkeeper.reports.slo_report import build_slo_report
from watchkeeper.reports.timerange import TimeRange, parse_range
from watchkeeper.reports.trend_report import build_trend_report

EXAMPLES = """examples:
  watchkeeper report slo --from -30d --format html -o slo.html
  watchkeeper report trend --metric node_cpu_usage_percent --metric node_memory_used_percent --from -7d
  watchkeeper report capacity --metric node_filesystem_used_percent --threshold 90 --from -14d -o capacity.md"""
DEFAULT_CAPACITY_METRIC = "node_filesystem_used_percent"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="SLO, trend and capacity reports from ClickHouse",
        description="Reports computed with ClickHouse SQL over the stored samples and aggregates.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # `--from -7d` must read -7d as a value: argparse takes anything starting with '-' for an option unless it
    # looks like a negative number, so offsets are taught to look like one.
    parser._negative_number_matcher = re.compile(r"^-\d+(\.\d+)?[smhdw]?$")
    parser.add_argument("kind", choices=["slo", "trend", "capacity"])
    parser.add_argument("--from", dest="start", help="start: ISO time, or -7d from now (default: 30d SLO, 7d other)")
    parser.add_argument("--to", dest="end", help="end: ISO time or now (default now)")
    parser.add_argument("--format", choices=["md", "html"], default="md")
    parser.add_argument("-o", "--output", help="file to write (default: <kind>-report.<format>)")
    parser.add_argument("--config", help="watchkeeper.yaml (default ./watchkeeper.yaml if present)")
    parser.add_argument("--dsn", help="ClickHouse to read (default: the config's query URL)")
    parser.add_argument("--metric", action="append", default=[],
                        help=f"trend: metrics to compare (repeat; default all); capacity: the metric to forecast "
                             f"(default {DEFAULT_CAPACITY_METRIC})")
    parser.add_argument("--threshold", type=float, default=90.0, help="capacity: the level to forecast (default 90)")
    parser.add_argument("--source", choices=["aggregates", "samples"], default="aggregates",
                        help="trend/capacity: read window aggregates (default) or raw samples")
    parser.add_argument("--top", type=int, default=10, help="trend: how many movers to list")
    parser.add_argument("--no-charts", action="store_true", help="numbers only")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    span = timedelta(days=30 if args.kind == "slo" else 7)
    try:
        tr = parse_range(args.start, args.end, now, span)
    except ValueError as exc:
        raise WatchkeeperError(str(exc)) from None
    dsn = args.dsn or load_config(args.config).clickhouse_reader_dsn
    out = Path(args.output or f"{args.kind}-report.{args.format}")
    doc = generate(args, dsn, tr)
    written = write_html(doc, out) if args.format == "html" else write_markdown(doc, out)
    print(f"wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
    return 0


def generate(args: argparse.Namespace, dsn: str, tr: TimeRange) -> Document:
    client = get_reader(dsn)
    charts = not args.no_charts
    with QueryRunner(client, steps=2) as q:
        if args.kind == "slo":
            return build_slo_report(q, tr, charts)[0]
        if args.kind == "trend":
            return build_trend_report(q, tr, args.metric, args.source, args.top, charts)[0]
        if len(args.metric) > 1:
            raise WatchkeeperError("report capacity: forecast one --metric at a time")
        metric = args.metric[0] if args.metric else DEFAULT_CAPACITY_METRIC
        return build_capacity_report(q, tr, metric, args.threshold, args.source, charts)[0]
