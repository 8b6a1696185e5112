"""`watchkeeper worker`: the Faust worker running Watchkeeper's agents."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Collection
from typing import TYPE_CHECKING

from watchkeeper.plumbing.config import Config, load_config
from watchkeeper.plumbing.errors import RuleFileError, WatchkeeperError
from watchkeeper.plumbing.log_filters import limit_reconnect_errors
from watchkeeper.plumbing.loop_lag import LoopLagMonitor
from watchkeeper.plumbing.self_metrics import EVENT_LOOP_LAG
from watchkeeper.plumbing.topics import ensure_topics, topic_plan

if TYPE_CHECKING:
    from watchkeeper.agents.anomaly_agent import AnomalyAgentSettings
    from watchkeeper.agents.app import WorkerSettings
    from watchkeeper.agents.rules_wiring import RulesAgentSettings
    from watchkeeper.agents.window_agent import WindowAgentSettings

# A rule file the worker cannot run exits with its own code, so a supervisor tells a bad file from a crash.
RULE_FILE_EXIT_CODE = 2
AGENTS = ("windows", "rules", "anomaly")  # what `watchkeeper worker` runs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "worker", help="run the Faust worker (window, rule and anomaly agents)",
        description="Run the Faust worker: event-time windows, rules and detectors over wk.samples.",
        epilog="example: watchkeeper worker --config watchkeeper.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", help="watchkeeper.yaml (default: ./watchkeeper.yaml if present)")
    p.add_argument("--loglevel", default="warning", choices=["debug", "info", "warning", "error"])
    p.add_argument("--warn-loop-blocked", type=_positive_seconds, default=1.0, metavar="SECONDS",
                   help="log a WARNING, with where it was blocked, when the event loop is blocked this long "
                        "(default 1.0; not named --loop...: Faust reads --loop from the command line itself)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from watchkeeper.agents.app import create_app, make_worker

    cfg = load_config(args.config)
    try:
        app = create_app(worker_settings(cfg))
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


def _positive_seconds(text: str) -> float:
    """A duration in seconds > 0 (0 or less would warn on every wake of the monitor)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value


def worker_settings(cfg: Config, agents: Collection[str] = AGENTS) -> WorkerSettings:
    """What the worker reads of `cfg`, with the settings of each of `agents` (a subset of `AGENTS`)."""
    from watchkeeper.agents.app import WorkerSettings

    unknown = set(agents) - set(AGENTS)
    if unknown:
        raise ValueError(f"unknown agents {sorted(unknown)}: the worker runs {', '.join(AGENTS)}")
    return WorkerSettings(kafka=cfg.kafka, worker=cfg.worker, data_path=cfg.data_path,
                          windows=window_agent_settings(cfg) if "windows" in agents else None,
                          rules=rules_agent_settings(cfg) if "rules" in agents else None,
                          anomaly=anomaly_agent_settings(cfg) if "anomaly" in agents else None)


def window_agent_settings(cfg: Config) -> WindowAgentSettings:
    """What the window agent reads of `cfg`."""
    from watchkeeper.agents.window_agent import WindowAgentSettings

    return WindowAgentSettings(kafka=cfg.kafka, windows=cfg.windows)


def rules_agent_settings(cfg: Config) -> RulesAgentSettings:
    """What the rules agent reads of `cfg`: its rule files and SLO specs resolved against the config file."""
    from watchkeeper.agents.rules_wiring import RulesAgentSettings

    return RulesAgentSettings(kafka=cfg.kafka, rules=cfg.rules, windows=cfg.windows, app_id=cfg.worker.app_id,
                              rule_files=tuple(cfg.resolve(f) for f in cfg.rules.files),
                              slo_specs=tuple(cfg.resolve(f) for f in cfg.rules.slo_specs), data_path=cfg.data_path)


def anomaly_agent_settings(cfg: Config) -> AnomalyAgentSettings:
    """What the anomaly agent reads of `cfg`: its rule files resolved against the config file."""
    from watchkeeper.agents.anomaly_agent import AnomalyAgentSettings

    return AnomalyAgentSettings(kafka=cfg.kafka, anomaly=cfg.anomaly,
                                rule_files=tuple(cfg.resolve(f) for f in cfg.anomaly.files))
