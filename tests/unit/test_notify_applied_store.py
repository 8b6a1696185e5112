"""The newest applied transition per fingerprint survives a reopen and is pruned with the log retention."""
from __future__ import annotations

from pathlib import Path

from watchkeeper.core.notify.stale_events import Applied
from watchkeeper.schemas.alerts import AlertEvent
from watchkeeper.sinks.notify_store import NotifyStore


def ev(fp: str, t: float, state: str) -> AlertEvent:
    return AlertEvent.model_validate({"fingerprint": fp, "rule": "r", "state": state, "starts_at": 1.0,
                                      "event_time": t})


def test_applied_survives_reopen(tmp_path: Path) -> None:
    s = NotifyStore(tmp_path / "n.db")
    s.put_applied([ev("a" * 16, 10.0, "firing")], now=100.0)
    s.put_applied([ev("a" * 16, 20.0, "resolved")], now=101.0)
    s.close()
    s = NotifyStore(tmp_path / "n.db")
    assert s.applied("a" * 16) == Applied(20.0, "resolved")
    assert s.applied("b" * 16) is None
    s.close()


def test_applied_pruned_before_retention_in_batches(tmp_path: Path) -> None:
    s = NotifyStore(tmp_path / "n.db")
    s.put_applied([ev(f"{i:016x}", 1.0, "firing") for i in range(5)], now=100.0)
    s.put_applied([ev("f" * 16, 1.0, "firing")], now=200.0)
    assert s.prune_applied(before=150.0, limit=3) == 3
    assert s.prune_applied(before=150.0, limit=3) == 2
    assert s.prune_applied(before=150.0, limit=3) == 0
    assert s.applied("f" * 16) == Applied(1.0, "firing")
    s.close()
