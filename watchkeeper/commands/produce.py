"""`watchkeeper produce system|probe|push|scrape`: run one producer."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from watchkeeper.config import load_config
from watchkeeper.errors import WatchkeeperError
from watchkeeper.topics import ensure_topics, topic_plan


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "produce", help="run one producer: system (psutil of this host)",
        description="Run one producer, sending SampleBatches to wk.samples.",
        epilog="example: watchkeeper produce system --config watchkeeper.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("kind", choices=["system"])
    p.add_argument("--config", help="watchkeeper.yaml (default: ./watchkeeper.yaml if present)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cfg = load_config(args.config)
    if args.kind != "system":
        raise WatchkeeperError(f"unknown producer {args.kind}")
    from producers.system import run_system_producer

    async def main() -> None:
        await ensure_topics(cfg.kafka.bootstrap, topic_plan(cfg))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_system_producer(cfg, stop=stop)

    asyncio.run(main())
    return 0
