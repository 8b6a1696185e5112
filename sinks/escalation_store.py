"""Escalation states (where each group is in its policy) and remediation runs, in the notification sink's
`state.sqlite` beside its alerts, log and outbox, so a restart resumes a policy at the level it reached
and a cooldown outlives the process. The dashboard reads the same table to show "level 2 since 10:42"."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson

from watchkeeper.core.notify.escalation import EscalationState

_SCHEMA = """
CREATE TABLE IF NOT EXISTS escalations (group_key TEXT PRIMARY KEY, state BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS remediation_runs (fingerprint TEXT NOT NULL, hook TEXT NOT NULL, ran_at REAL NOT NULL,
    PRIMARY KEY (fingerprint, hook));
"""


class EscalationStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(_SCHEMA)

    def all(self) -> dict[str, EscalationState]:
        rows = self.db.execute("SELECT group_key, state FROM escalations").fetchall()
        return {r[0]: EscalationState.from_json(orjson.loads(r[1])) for r in rows}

    def put(self, st: EscalationState) -> None:
        self.db.execute("INSERT OR REPLACE INTO escalations VALUES (?, ?)", (st.group_key, orjson.dumps(st.to_json())))

    def drop(self, group_key: str) -> None:
        self.db.execute("DELETE FROM escalations WHERE group_key = ?", (group_key,))

    def last_run(self, fingerprint: str, hook: str) -> float | None:
        row = self.db.execute("SELECT ran_at FROM remediation_runs WHERE fingerprint = ? AND hook = ?",
                              (fingerprint, hook)).fetchone()
        return float(row[0]) if row else None

    def ran(self, fingerprints: list[str], hook: str, now: float) -> None:
        self.db.executemany("INSERT OR REPLACE INTO remediation_runs VALUES (?, ?, ?)",
                            [(fp, hook, now) for fp in fingerprints])

    def close(self) -> None:
        self.db.close()
