"""The notify sink's bounds, pure: when pruning is due, the retention cutoff, which planned notifications
enter a bounded outbox (the newest beyond the bound are refused, their log entry left out), and the
resolved alerts a refused notification carried going back into their group."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchkeeper.core.notify.config import Route
from watchkeeper.core.notify.dispatch import Group, LogEntry
from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.outbox_bounds import Flush, PruneSchedule, admit, keep_refused, retention_cutoff
from watchkeeper.plumbing.config import Config, load_config
from watchkeeper.plumbing.errors import ConfigError
from watchkeeper.schemas.alerts import AlertEvent


def note(group: str, integration: str, t: float = 100.0) -> Notification:
    return Notification("team", integration, group, {}, [], t)


def flush(group: str, *integrations: str, t: float = 100.0) -> Flush:
    entry = LogEntry(frozenset({"fp"}), frozenset(), t)
    return ("team", group, {i: entry for i in integrations}, [note(group, i, t) for i in integrations])


def test_pruning_is_due_at_start_then_every_interval() -> None:
    s = PruneSchedule(interval=60.0, batch=10)
    assert s.due(0.0) and s.due(1_000.0)
    assert s.ran(1_000.0, deleted=3) is True  # a short batch: the round is over
    assert not s.due(1_059.9) and s.due(1_060.0)


def test_a_full_batch_leaves_pruning_due_for_the_next_turn() -> None:
    s = PruneSchedule(interval=60.0, batch=10)
    assert s.ran(500.0, deleted=10) is False
    assert s.due(500.0)  # the next turn of the loop deletes the next batch
    assert s.ran(500.1, deleted=0) is True
    assert s.next_at == pytest.approx(560.1)


def test_retention_cutoff() -> None:
    assert retention_cutoff(1_000_000.0, 432_000.0) == 568_000.0
    with pytest.raises(ValueError, match="retention must be > 0"):
        retention_cutoff(1_000.0, 0.0)


def test_room_for_everything_admits_everything_unchanged() -> None:
    flushes = [flush("g1", "webhook[0]", "slack[0]"), flush("g2", "webhook[0]")]
    out = admit(flushes, pending=5, max_pending=8)
    assert out.flushes == flushes and out.refused == []


def test_the_newest_beyond_the_bound_are_refused_and_their_log_entries_left_out() -> None:
    flushes = [flush("g1", "webhook[0]"), flush("g2", "webhook[0]", "slack[0]"), flush("g3", "webhook[0]")]
    out = admit(flushes, pending=7, max_pending=9)  # room for two
    assert [(f[1], sorted(f[2]), [n.integration for n in f[3]]) for f in out.flushes] == [
        ("g1", ["webhook[0]"], ["webhook[0]"]),
        ("g2", ["webhook[0]"], ["webhook[0]"]),  # slack[0] refused: the log must not say it was told
    ]
    assert [(n.group_key, n.integration) for n in out.refused] == [("g2", "slack[0]"), ("g3", "webhook[0]")]


def test_a_full_outbox_refuses_all_but_keeps_log_entries_without_notifications() -> None:
    entry = LogEntry(frozenset(), frozenset({"fp"}), 100.0)
    # slack with send_resolved false: a log entry and no notification (nothing to refuse, the entry stands)
    quiet: Flush = ("team", "g1", {"slack[0]": entry, "webhook[0]": entry}, [note("g1", "webhook[0]")])
    out = admit([quiet], pending=10, max_pending=10)
    assert out.flushes == [("team", "g1", {"slack[0]": entry}, [])]
    assert [n.integration for n in out.refused] == ["webhook[0]"]
    out = admit([flush("g2", "webhook[0]")], pending=12, max_pending=10)  # already over (the bound lowered)
    assert out.flushes == [] and len(out.refused) == 1


@given(st.lists(st.integers(min_value=0, max_value=3), max_size=12), st.integers(0, 20), st.integers(1, 20))
def test_admission_keeps_planning_order_and_loses_nothing(sizes: list[int], pending: int, limit: int) -> None:
    integrations = ["webhook[0]", "slack[0]", "email[0]"]
    flushes = [flush(f"g{i}", *integrations[:k]) for i, k in enumerate(sizes)]
    out = admit(flushes, pending, limit)
    planned = [n.notification_id for f in flushes for n in f[3]]
    kept = [n.notification_id for f in out.flushes for n in f[3]]
    assert kept + [n.notification_id for n in out.refused] == planned  # nothing lost, the newest refused
    assert len(kept) == min(len(planned), max(0, limit - pending))
    for _, _, log, notes in out.flushes:  # every kept notification keeps its log entry, no refused one has one
        assert {n.integration for n in notes} <= set(log)
    refused = {(n.group_key, n.integration) for n in out.refused}
    assert not any((g, i) in refused for _, g, log, _ in out.flushes for i in log)


def test_the_bounds_are_configured_with_alertmanagers_default_and_checked(tmp_path: Path) -> None:
    assert Config().notify.retention_seconds == 120 * 3600  # Alertmanager's --data.retention
    f = tmp_path / "watchkeeper.yaml"
    f.write_text("notify:\n  parallel_deliveries: 4\n  retention_seconds: 0\n")
    with pytest.raises(ConfigError, match=r"watchkeeper.yaml:3: notify.retention_seconds: Input should be greater "
                                          r"than 0"):
        load_config(str(f))
    f.write_text("notify:\n  outbox_max_pending: -5\n")
    with pytest.raises(ConfigError, match=r"watchkeeper.yaml:2: notify.outbox_max_pending: Input should be greater"):
        load_config(str(f))


def _alert(fp: str, state: str) -> AlertEvent:
    return AlertEvent(fingerprint=fp, rule="DiskFull", state=state, labels={"alertname": "DiskFull"},
                      starts_at=10.0, ends_at=20.0 if state == "resolved" else None, event_time=10.0)


def test_a_refused_resolution_goes_back_into_its_group_alive_again_if_it_ended() -> None:
    route = Route("team", frozenset({"alertname"}), 0.0, 300.0, 3600.0, [])
    ended = Group(route, {"alertname": "DiskFull"}, "g-ended", next_flush=400.0, has_flushed=True)
    mixed = Group(route, {}, "g-mixed", next_flush=400.0, alerts={"a": _alert("a", "firing")}, has_flushed=True)
    groups = {"g-mixed": mixed}  # the flush at 100 dropped the resolved alerts, and the ended group
    refused = [Notification("team", "webhook[0]", "g-ended", {}, [_alert("b", "resolved")], 100.0),
               Notification("team", "webhook[0]", "g-mixed", {}, [_alert("a", "firing"), _alert("c", "resolved")],
                            100.0),
               Notification("team", "webhook[0]", "g/remediation", {}, [_alert("d", "resolved")], 100.0)]
    keep_refused(refused, {"g-ended": ended, "g-mixed": mixed}, groups)
    assert set(groups) == {"g-ended", "g-mixed"}  # the remediation report had no group: dead-lettered only
    assert {fp: a.state for fp, a in groups["g-ended"].alerts.items()} == {"b": "resolved"}
    assert {fp: a.state for fp, a in groups["g-mixed"].alerts.items()} == {"a": "firing", "c": "resolved"}
    assert groups["g-ended"].next_flush == 400.0  # its next flush, a group_interval on, tells the resolution


def test_a_newer_state_that_arrived_since_stays() -> None:
    route = Route("team", frozenset({"alertname"}), 0.0, 300.0, 3600.0, [])
    g = Group(route, {}, "g", next_flush=400.0, alerts={"b": _alert("b", "firing")}, has_flushed=True)
    groups = {"g": g}
    keep_refused([Notification("team", "webhook[0]", "g", {}, [_alert("b", "resolved")], 100.0)], {"g": g}, groups)
    assert groups["g"].alerts["b"].state == "firing"
