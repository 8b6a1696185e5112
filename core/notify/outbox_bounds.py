"""The bounds of the notification sink's durable state: how long finished notifications and
notification-log entries are kept, how many notifications may wait to be sent, and when to prune.

Alertmanager keeps its notification log for `--data.retention` (120h) and garbage-collects older entries;
the outbox here is kept the same way. The dedup that stops a replayed alert being notified twice is the
notification log (`dispatch.needs_update`), never the outbox: outbox ids include the flush time, so a
replanned flush is a new row whatever is kept. Pruning log entries older than the retention is therefore
what decides how far back a replay is recognised, exactly as in Alertmanager; entries of groups still held
by the dispatcher are kept whatever their age, so a `repeat_interval` longer than the retention does not
make a group notify early.

Pending notifications are bounded too (`max_pending`): beyond it the newest planned notifications are
refused, never silently: the caller dead-letters and counts each, the refused integration's log entry is
left out and the resolved alerts it carried are put back in their group, so the group plans it again at its
next flush (by then the backlog may have drained).
Pure: time is an argument."""

from __future__ import annotations

from dataclasses import dataclass, field

from watchkeeper.core.notify.dispatch import Group, LogEntry
from watchkeeper.core.notify.notification import Notification

# (receiver, group key, integration -> new log entry, notifications): one planned flush, as the store takes it.
Flush = tuple[str, str, dict[str, LogEntry], list[Notification]]

# Rows deleted per table per batch: a median 18 ms of SQLite with its incremental vacuum here (2 busy cores; a
# rare batch ~90 ms), so the sink's loop never waits long.
PRUNE_BATCH = 500
PRUNE_INTERVAL_SECONDS = 60.0  # between pruning rounds once a round found nothing more to delete


@dataclass
class PruneSchedule:
    """When the next pruning batch is due. Due at start (`next_at` 0), so a restart prunes first; a batch
    that deleted a full `batch` of rows leaves it due (more may remain), the next batch running on the next
    turn of the loop; a short batch ends the round until `interval` later."""

    interval: float = PRUNE_INTERVAL_SECONDS
    batch: int = PRUNE_BATCH
    next_at: float = 0.0

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def ran(self, now: float, deleted: int) -> bool:
        """Record a batch that deleted `deleted` rows (the most of any table it pruned); True when the
        round is over (nothing more was left to delete)."""
        if deleted >= self.batch:
            return False
        self.next_at = now + self.interval
        return True


def retention_cutoff(now: float, retention: float) -> float:
    """Rows finished (and log entries written) before this time are pruned."""
    if retention <= 0:
        raise ValueError(f"retention must be > 0 seconds, got {retention}")
    return now - retention


@dataclass
class Admission:
    """What may enter the outbox: `flushes` (with the log entries of refused integrations left out) and the
    `refused` notifications, the newest beyond the bound, for the caller to dead-letter and count."""

    flushes: list[Flush] = field(default_factory=list)
    refused: list[Notification] = field(default_factory=list)


def admit(flushes: list[Flush], pending: int, max_pending: int) -> Admission:
    """Keep notifications in planning order while the outbox has room for them (`pending` wait already,
    at most `max_pending` may); refuse the rest. A refused notification's log entry is dropped, so the
    notification log does not claim the integration was told, and the group notifies it again later."""
    room = max(0, max_pending - pending)
    out = Admission()
    for receiver, group_key, log, notes in flushes:
        kept, refused = notes[:room], notes[room:]
        room -= len(kept)
        if refused:
            told = {n.integration for n in refused}
            log = {integ: e for integ, e in log.items() if integ not in told}
            out.refused += refused
        if log or kept:
            out.flushes.append((receiver, group_key, log, kept))
    return out


def keep_refused(refused: list[Notification], flushed: dict[str, Group], groups: dict[str, Group]) -> None:
    """Put back what a flush dropped that a refused notification did not tell: its resolved alerts, into
    their group (`flushed`, by key), which lives on in `groups` (the dispatcher's) if the flush ended it, so
    its next flush (`group_interval` later) tells them. Its firing alerts never left the group. A refused
    notification of no group flush (a remediation report) has nothing to put back: it is only dead-lettered."""
    for n in refused:
        g = flushed.get(n.group_key)
        if g is None:
            continue
        for a in n.resolved():
            g.alerts.setdefault(a.fingerprint, a)  # a newer state that arrived since stays
        if g.alerts:
            groups.setdefault(g.key, g)
