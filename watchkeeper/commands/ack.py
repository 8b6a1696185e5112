"""`watchkeeper ack`: acknowledge a firing alert (stop its repeats and hold its escalation until it resolves
or the ack expires), list acks, end them. Stored in `<data_dir>/notify/acks.sqlite`, which the notification
sink reads at every flush and the dashboard shows beside the alert."""

from __future__ import annotations

import argparse
import getpass
import math
import time
from datetime import datetime

from rich.console import Console
from rich.table import Table

from watchkeeper.core.notify.acks import AckError
from watchkeeper.core.slo.go_format import parse_prom_duration
from watchkeeper.plumbing.config import load_config
from watchkeeper.plumbing.errors import WatchkeeperError
from watchkeeper.sinks.ack_store import AckStore, ack_store_path, acknowledge

USAGE = ("watchkeeper ack FINGERPRINT --comment TEXT [--by NAME] [--expires DURATION]\n"
         "       watchkeeper ack --matcher M [--matcher M ...] --comment TEXT [--by NAME] [--expires DURATION]\n"
         "       watchkeeper ack ls [--all]\n"
         "       watchkeeper ack expire ID...")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ack", help="acknowledge firing alerts; list and end acks", usage=USAGE,
        description="An ack stops the repeat notifications (and the escalation) of the firing alerts it names "
                    "until each resolves or the ack expires; their next firing notifies again. Recorded on "
                    "wk.notifications (status `acknowledged`: who, when, comment).",
        epilog="examples:\n  watchkeeper ack 3f2a9c0d1e2b4a5c --comment \"restarting the db\"\n"
               "  watchkeeper ack --matcher alertname=DiskFull --matcher 'instance=~\"web-.*\"' "
               "--comment \"cleaning /var\" --expires 2h\n  watchkeeper ack ls\n  watchkeeper ack expire 7c1e",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("words", nargs="*", metavar="FINGERPRINT | ls | expire ID...",
                   help="the alert's fingerprint (from the dashboard or `watchkeeper sql`), or `ls`, or `expire`")
    p.add_argument("--matcher", "-m", action="append", default=[],
                   help='a label matcher instead of a fingerprint: name=value, name!=value, name=~"re", name!~"re"')
    p.add_argument("--comment", "-c", default="", help="what is being done about it (required)")
    p.add_argument("--by", default="", help="who (default: the current user)")
    p.add_argument("--expires", help="end the ack after this long even if the alert still fires (e.g. 4h)")
    p.add_argument("--all", action="store_true", help="ls: also expired acks")
    p.add_argument("--config", help="watchkeeper.yaml (default: ./watchkeeper.yaml if present)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    words = list(args.words)
    if words[:1] == ["ls"]:
        return _ls(args)
    if words[:1] == ["expire"]:
        return _expire(args, words[1:])
    if len(words) > 1:
        raise WatchkeeperError(f"one fingerprint per ack (got {len(words)}); use --matcher for several alerts")
    expires = None
    if args.expires:
        try:
            expires = parse_prom_duration(args.expires)
        except ValueError as exc:
            raise WatchkeeperError(f"--expires: {exc}") from None
    cfg = load_config(args.config)
    try:
        ack, covered = acknowledge(cfg.data_path, comment=args.comment, by=args.by or getpass.getuser(),
                                   fingerprint=words[0] if words else "", matchers=",".join(args.matcher),
                                   expires_in=expires, now=time.time())
    except AckError as exc:
        raise WatchkeeperError(f"{exc}\nusage: {USAGE}") from None
    print(ack.id)
    if covered:
        for a in covered:
            print(f"  covers {a.fingerprint} {a.rule} {dict(sorted(a.labels.items()))}")
    else:
        print("  covers no firing alert the notification sink holds now (it will cover any named alert whose "
              "current firing began before this ack)")
    return 0


def _ls(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    path = ack_store_path(cfg.data_path)
    acks = []
    if path.exists():
        store = AckStore(path)
        acks = store.all()
        store.close()
    now = time.time()
    table = Table("id", "alerts", "state", "made", "expires", "by", "comment")
    for a in acks:
        st = a.state(now)
        if st == "expired" and not args.all:
            continue
        table.add_row(a.id[:12], a.target, st, _fmt(a.created_at),
                      "never" if math.isinf(a.expires_at) else _fmt(a.expires_at), a.by, a.comment)
    Console(width=160).print(table)
    return 0


def _expire(args: argparse.Namespace, ids: list[str]) -> int:
    if not ids:
        raise WatchkeeperError("which ack? e.g. watchkeeper ack expire 7c1e (ids from `watchkeeper ack ls`)")
    cfg = load_config(args.config)
    store = AckStore(ack_store_path(cfg.data_path))
    missing = [i for i in ids if not store.expire(i, time.time())]
    store.close()
    if missing:
        raise WatchkeeperError(f"no active ack with id {', '.join(missing)}")
    return 0


def _fmt(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")
