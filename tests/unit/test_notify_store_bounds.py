"""The notify sink's SQLite state, bounded: given outbox rows and log entries of known ages, expect what a
prune at a given time deletes (never a pending row, never an active group's log entry), in batches of at
most `limit`, and the file to shrink once pruned (incremental auto-vacuum), a file made before included."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson

from watchkeeper.core.notify.dispatch import LogEntry
from watchkeeper.core.notify.notification import Notification
from watchkeeper.schemas.alerts import AlertEvent
from watchkeeper.sinks.notify_store import NotifyStore

DAY = 86_400.0


def alert(i: int, t: float) -> AlertEvent:
    return AlertEvent(fingerprint=f"{i:016x}", rule="DiskFull", state="firing", severity="critical",
                      labels={"alertname": "DiskFull", "instance": f"host-{i}:9100", "mountpoint": "/var"},
                      annotations={"summary": f"disk of host-{i} is 97% full", "runbook_url": "https://runbooks/x"},
                      value=97.0, starts_at=t, event_time=t)


def enqueue(store: NotifyStore, group: str, t: float, n: int = 1) -> list[str]:
    """`n` notifications of one group planned at `t`, with the group's log entry; returns their ids."""
    notes = [Notification("team", f"webhook[{k}]", group, {"alertname": "DiskFull"}, [alert(k, t)], t)
             for k in range(n)]
    entry = LogEntry(frozenset({"fp"}), frozenset(), t)
    store.enqueue("team", group, {x.integration: entry for x in notes}, notes, t)
    return [x.notification_id for x in notes]


def outbox_states(store: NotifyStore) -> dict[str, str]:
    return dict(store.db.execute("SELECT id, state FROM outbox").fetchall())


def test_finished_rows_past_the_retention_go_pending_ones_never(tmp_path: Path) -> None:
    store = NotifyStore(tmp_path / "state.sqlite")
    t0 = 1_000_000.0
    acked, failed, held, pending, retrying, recent = (enqueue(store, f"g{i}", t0)[0] for i in range(6))
    store.acked(acked, t0 + 1)
    store.failed(failed, "HTTP 400", t0 + 3600)  # finished an hour after it was made: kept an hour longer
    store.held(held, "rate limit", t0 + 2)
    store.retry(retrying, t0 + 10, "HTTP 500")
    store.acked(recent, t0 + 5 * DAY)

    assert store.prune_outbox(t0, 100) == 0  # nothing finished before t0
    assert store.prune_outbox(t0 + 100, 100) == 2  # acked and held
    assert set(outbox_states(store)) == {failed, pending, retrying, recent}
    assert store.prune_outbox(t0 + 100 * DAY, 100) == 2  # failed and recent; whatever their age, these stay:
    assert outbox_states(store) == {pending: "pending", retrying: "pending"}
    assert store.pending_count() == 2


def test_pruning_goes_in_batches_of_at_most_limit(tmp_path: Path) -> None:
    store = NotifyStore(tmp_path / "state.sqlite")
    for id in enqueue(store, "g", 100.0, n=25):
        store.acked(id, 200.0)
    assert [store.prune_outbox(300.0, 10) for _ in range(4)] == [10, 10, 5, 0]


def test_log_entries_past_the_retention_go_except_active_groups(tmp_path: Path) -> None:
    store = NotifyStore(tmp_path / "state.sqlite")
    for g in ("old-resolved", "old-firing", "new"):
        enqueue(store, g, 100.0 if g.startswith("old") else 900.0)
    assert store.prune_log(500.0, 100, active_groups=["old-firing"]) == 1
    assert store.log_entry("team", "webhook[0]", group_key="old-resolved") is None
    assert store.log_entry("team", "webhook[0]", group_key="old-firing") is not None  # still told: no early repeat
    assert store.log_entry("team", "webhook[0]", group_key="new") is not None
    assert store.prune_log(500.0, 100, active_groups=[]) == 1  # once the group is gone, its entry goes too


def test_many_old_active_entries_do_not_stall_pruning_the_others(tmp_path: Path) -> None:
    store = NotifyStore(tmp_path / "state.sqlite")
    for i in range(30):
        enqueue(store, f"active{i}", 10.0)  # older than every other entry, and more of them than a batch
    for i in range(5):
        enqueue(store, f"gone{i}", 20.0)
    assert store.prune_log(500.0, 10, active_groups=[f"active{i}" for i in range(30)]) == 5


def _file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))  # the file, its -wal and -shm


def test_the_file_shrinks_once_pruned(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    store = NotifyStore(path)
    assert store.incremental  # a new file is made in incremental auto-vacuum mode
    for day in range(5):  # 5 days of 2,000 delivered notifications a day, one alert each
        t = 1_000_000.0 + day * DAY
        for g in range(0, 2000, 100):
            for id in enqueue(store, f"d{day}g{g}", t, n=100):
                store.acked(id, t + 1)
    store.checkpoint()
    before = _file_bytes(path)
    now = 1_000_000.0 + 4 * DAY + 10  # the retention keeps the last day only
    deleted = []
    while (n := store.prune_outbox(now - DAY, 1000)) > 0:
        deleted.append(n)
        store.reclaim()
    store.checkpoint()
    after = _file_bytes(path)
    print(f"\nnotify state: {before} bytes with 10,000 finished rows, {after} bytes after pruning 8,000")
    assert sum(deleted) == 8000 and max(deleted) == 1000
    assert store.db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 2000
    assert after < before * 0.35  # a fifth of the rows are left (plus the log entries, which stay)
    assert int(store.db.execute("PRAGMA freelist_count").fetchone()[0]) == 0


def test_a_file_made_before_the_bounds_is_migrated_and_compacted_once(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    old = sqlite3.connect(str(path), isolation_level=None)
    old.execute("PRAGMA journal_mode=WAL")  # as the store made it before: no auto-vacuum, no `finished` column
    old.executescript("""
        CREATE TABLE outbox (id TEXT PRIMARY KEY, receiver TEXT, integration TEXT, group_key TEXT,
            body BLOB NOT NULL, created REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending', error TEXT NOT NULL DEFAULT '');
        CREATE TABLE nflog (receiver TEXT, integration TEXT, group_key TEXT, firing BLOB, resolved BLOB,
            time REAL, PRIMARY KEY (receiver, integration, group_key));
    """)
    body = orjson.dumps({"pad": "x" * 3000})
    old.executemany("INSERT INTO outbox (id, body, created, next_at, state) VALUES (?, ?, ?, ?, ?)",
                    [(f"a{i}", body, 100.0, 100.0, "acked") for i in range(3000)]
                    + [("p", body, 100.0, 100.0, "pending")])
    old.close()

    store = NotifyStore(path)
    assert not store.incremental
    assert store.prune_outbox(150.0, 5000) == 3000  # no finish time: the creation time stands in
    assert store.reclaim() == 0  # not in incremental mode yet: pages are only reusable
    store.checkpoint()
    before = _file_bytes(path)
    assert store.compact() is True and store.incremental
    assert store.compact() is False  # once
    store.checkpoint()
    assert _file_bytes(path) < before / 10
    assert outbox_states(store) == {"p": "pending"}
    store.acked("p", 200.0)  # the migrated file takes finish times
    assert store.prune_outbox(150.0, 10) == 0 and store.prune_outbox(250.0, 10) == 1


def test_a_vacuum_that_cannot_lock_the_file_is_postponed(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    old = sqlite3.connect(str(path), isolation_level=None)
    old.execute("PRAGMA journal_mode=WAL")
    old.execute("CREATE TABLE outbox (id TEXT PRIMARY KEY, receiver TEXT, integration TEXT, group_key TEXT, "
                "body BLOB NOT NULL, created REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at REAL "
                "NOT NULL, state TEXT NOT NULL DEFAULT 'pending', error TEXT NOT NULL DEFAULT '')")
    store = NotifyStore(path)
    store.db.execute("PRAGMA busy_timeout=50")
    old.execute("BEGIN IMMEDIATE")  # another writer (the escalation store's connection) mid-transaction
    assert store.compact() is False and not store.incremental
    old.execute("COMMIT")
    assert store.compact() is True and store.incremental  # the next round does it
    old.close()
