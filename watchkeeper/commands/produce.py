"""`watchkeeper produce [system] [probe] [scrape] [push]`: run producers in one process."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import TYPE_CHECKING, Any

from watchkeeper.plumbing.config import Config, load_config
from watchkeeper.plumbing.errors import WatchkeeperError
from watchkeeper.plumbing.log_filters import limit_reconnect_errors
from watchkeeper.supervisor import until_signalled

if TYPE_CHECKING:
    from watchkeeper.producers.runner import ProducerSettings
    from watchkeeper.producers.sender import SenderSettings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "produce", help="run producers: system (psutil), probe (HTTP), scrape (/metrics), push (HTTP API)",
        description="Run producers in one process. They share one sender and one durable spool "
                    "(<data_dir>/spool/<kinds>), so nothing is lost while Kafka is down.",
        epilog="examples:\n  watchkeeper produce                      # every producer the config enables\n"
               "  watchkeeper produce push --config watchkeeper.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("kinds", nargs="*", metavar="KIND",
                   help="system, probe, scrape, push (default: those the config enables)")
    p.add_argument("--config", help="watchkeeper.yaml (default: ./watchkeeper.yaml if present)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from watchkeeper.producers.runner import KINDS, enabled_kinds, run_producers

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    limit_reconnect_errors()
    cfg = load_config(args.config)
    unknown = [k for k in args.kinds if k not in KINDS]
    if unknown:
        raise WatchkeeperError(f"unknown producer {', '.join(unknown)} (choose from {', '.join(KINDS)})")
    kinds = [k for k in KINDS if k in args.kinds] or enabled_kinds(cfg.producers)
    if not kinds:
        raise WatchkeeperError("no producer to run: the config enables none and none was named")

    async def main(settings: ProducerSettings, stop: asyncio.Event) -> dict[str, Any]:
        return await run_producers(settings, kinds, stop)

    # No waiting for Kafka here: the sender creates the topics on its first connection, and until then
    # (a broker that is down when the producers start) everything goes to the spool.
    asyncio.run(until_signalled(main, producer_settings(cfg)))
    return 0


def sender_settings(cfg: Config) -> SenderSettings:
    """What a producer process's sender reads of `cfg`."""
    from watchkeeper.producers.sender import SenderSettings

    spool = cfg.producers.spool
    return SenderSettings(kafka=cfg.kafka, spool=spool,
                          spool_dir=cfg.resolve(spool.dir) if spool.dir else cfg.data_path / "spool")


def producer_settings(cfg: Config) -> ProducerSettings:
    """What a producer process reads of `cfg`."""
    from watchkeeper.producers.runner import ProducerSettings

    return ProducerSettings(producers=cfg.producers, limits=cfg.ingest_limits(), sender=sender_settings(cfg))
