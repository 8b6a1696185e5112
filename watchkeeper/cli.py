"""The one `watchkeeper` entry point. Each subcommand lives in `watchkeeper/commands/<name>.py`.

A command module exposes ``register(subparsers)`` that adds its parser and sets ``func`` (returning an
exit code). Modules are discovered, so adding a command touches no shared file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from watchkeeper import __version__, commands
from watchkeeper.core.errors import CoreError
from watchkeeper.plumbing.errors import WatchkeeperError
from watchkeeper.plumbing.log_filters import install_secret_redaction, redact


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="watchkeeper",
        description="Event-driven monitoring: producers -> Kafka -> Faust agents -> ClickHouse and alerts.",
        epilog="example: watchkeeper up        (everything on this machine, embedded defaults)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"watchkeeper {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    install_secret_redaction()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (WatchkeeperError, CoreError) as exc:
        print(f"watchkeeper: error: {redact(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
