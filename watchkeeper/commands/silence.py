"""`watchkeeper silence add|ls|expire`: silences with matchers, start/end, author and comment, stored in
`<data_dir>/notify/silences.sqlite` and read by the notification sink at every flush."""

from __future__ import annotations

import argparse
import getpass
import time
import uuid
from datetime import datetime

from rich.console import Console
from rich.table import Table

from watchkeeper.core.notify.matchers import MatcherError, parse_matchers
from watchkeeper.core.notify.silences import Silence
from watchkeeper.core.slo.go_format import parse_prom_duration
from watchkeeper.plumbing.config import load_config
from watchkeeper.plumbing.errors import WatchkeeperError
from watchkeeper.sinks.notify_store import SilenceStore, store_paths


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "silence", help="add, list and expire silences",
        description="Silenced alerts are recorded (status `silenced` on wk.notifications) but not sent.",
        epilog='examples:\n  watchkeeper silence add alertname=HighCPU \'instance=~"web-.*"\' --duration 2h '
               '--comment "deploy"\n  watchkeeper silence ls\n  watchkeeper silence expire 3f2a',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="watchkeeper.yaml (default: ./watchkeeper.yaml if present)")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="create a silence", epilog="example: watchkeeper silence add "
                             "alertname=DiskFull severity=~\"critical|high\" --duration 1h --comment maintenance")
    add.add_argument("matchers", nargs="+", help='label matchers: name=value, name!=value, name=~"re", name!~"re"')
    add.add_argument("--duration", default="1h", help="how long from the start (default 1h)")
    add.add_argument("--start", help="ISO time it starts (default: now)")
    add.add_argument("--end", help="ISO time it ends (instead of --duration)")
    add.add_argument("--comment", default="", help="why")
    add.add_argument("--author", default="", help="who (default: the current user)")
    add.set_defaults(func=_add)
    ls = actions.add_parser("ls", help="list silences", epilog="example: watchkeeper silence ls --all")
    ls.add_argument("--all", action="store_true", help="also expired ones")
    ls.set_defaults(func=_ls)
    exp = actions.add_parser("expire", help="end silences now", epilog="example: watchkeeper silence expire 3f2a9c")
    exp.add_argument("ids", nargs="+", help="silence ids (a unique prefix is enough)")
    exp.set_defaults(func=_expire)


def _store(args: argparse.Namespace) -> SilenceStore:
    cfg = load_config(args.config)
    return SilenceStore(store_paths(cfg.data_path)[1])


def _when(text: str) -> float:
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise WatchkeeperError(f"not an ISO time: {text!r} (e.g. 2026-11-23T14:00)") from None


def _add(args: argparse.Namespace) -> int:
    try:
        matchers = parse_matchers(",".join(args.matchers))
    except MatcherError as exc:
        raise WatchkeeperError(str(exc)) from None
    if not matchers:
        raise WatchkeeperError("a silence needs at least one matcher")
    start = _when(args.start) if args.start else time.time()
    if args.end:
        end = _when(args.end)
    else:
        try:
            end = start + parse_prom_duration(args.duration)
        except ValueError as exc:
            raise WatchkeeperError(str(exc)) from None
    if end <= start:
        raise WatchkeeperError("the silence ends before it starts")
    s = Silence(uuid.uuid4().hex, matchers, start, end, args.author or getpass.getuser(), args.comment)
    store = _store(args)
    store.add(s)
    store.close()
    print(s.id)
    return 0


def _ls(args: argparse.Namespace) -> int:
    store = _store(args)
    now = time.time()
    table = Table("id", "matchers", "state", "starts", "ends", "author", "comment")
    for s in store.all():
        st = s.state(now)
        if st == "expired" and not args.all:
            continue
        table.add_row(s.id[:12], s.matchers_text, st, _fmt(s.starts_at), _fmt(s.ends_at), s.created_by, s.comment)
    store.close()
    Console(width=160).print(table)
    return 0


def _expire(args: argparse.Namespace) -> int:
    store = _store(args)
    missing = [i for i in args.ids if not store.expire(i, time.time())]
    store.close()
    if missing:
        raise WatchkeeperError(f"no active silence with id {', '.join(missing)}")
    return 0


def _fmt(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")
