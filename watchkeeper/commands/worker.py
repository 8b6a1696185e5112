"""`watchkeeper worker`: the Faust worker running Watchkeeper's agents."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from watchkeeper.plumbing.config import load_config
from watchkeeper.plumbing.errors import RuleFileError, WatchkeeperError
from watchkeeper.plumbing.log_filters import limit_reconnect_errors
from watchkeeper.plumbing.loop_lag import LoopLagMonitor
from watchkeeper.plumbing.self_metrics import EVENT_LOOP_LAG
from watchkeeper.plumbing.topics import ensure_topics, topic_plan

# A rule file the worker cannot run exits with its own code, so a supervisor tells a bad file from a crash.
RULE_FILE_EXIT_CODE = 2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "worker", help="run the Faust worker (window, rule and anomaly agents)",
        description="Run the Faust worker: event-time windows, rules and detectors over wk.samples.",
        epilog="example: watchkeeper worker --config watchkeeper.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", help="watchkeeper.yaml (default: ./watchkeeper.yaml if present)")
    p.add_argument("--loglevel", default="warning", choices=["debug", "info", "warning", "error"])
    p.add_argument("--warn-loop-blocked", type=float, default=1.0, metavar="SECONDS",
                   help="log a WARNING, with where it was blocked, when the event loop is blocked this long "
                        "(default 1.0; not named --loop...: Faust reads --loop from the command line itself)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from watchkeeper.agents.app import create_app, make_worker

    cfg = load_config(args.config)
    try:
        app = create_app(cfg)
    except WatchkeeperError as exc:
        # A configuration the worker cannot run at all says so before anything touches Kafka.
        print(f"watchkeeper worker: error: {exc}", file=sys.stderr)
        return RULE_FILE_EXIT_CODE if isinstance(exc, RuleFileError) else 1
    asyncio.run(ensure_topics(cfg.kafka.bootstrap, topic_plan(cfg.kafka.topics)))
    monitor = LoopLagMonitor(warn=args.warn_loop_blocked, observe=EVENT_LOOP_LAG.observe)
    app.task(monitor.watch)
    logging.basicConfig(level=args.loglevel.upper())
    limit_reconnect_errors()
    make_worker(app, args.loglevel).execute_from_commandline()
    return 0
