"""One group flush through Alertmanager's notification pipeline: inhibition, the route's time intervals
(TimeActiveStage, TimeMuteStage: the whole group, at the flush time) and silences mute alerts, then per
integration the dedup rule decides, against the notification log, whether to notify. A muted flush
leaves the notification log alone, so the first flush after the interval notifies."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from watchkeeper.core.notify.acks import Ack, ack_note, acked_by
from watchkeeper.core.notify.config import NotifyConfig
from watchkeeper.core.notify.dispatch import Group, LogEntry, needs_update
from watchkeeper.core.notify.inhibit import inhibited
from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.silences import Silence, silenced_by
from watchkeeper.core.notify.time_intervals import route_muted_by
from watchkeeper.schemas.alerts import AlertEvent


@dataclass
class FlushPlan:
    notifications: list[Notification] = field(default_factory=list)
    # (alert, silenced|inhibited|muted, why); `muted`: by a time interval, named in `why`
    muted: list[tuple[AlertEvent, str, str]] = field(default_factory=list)
    log: dict[str, LogEntry] = field(default_factory=dict)  # integration -> new notification-log entry
    sent: list[AlertEvent] = field(default_factory=list)  # the alerts this flush covered


def plan_flush(cfg: NotifyConfig, group: Group, now: float, firing_anywhere: Iterable[AlertEvent],
               silences: list[Silence], log_entry: Callable[[str], LogEntry | None],
               external_url: str = "", acks: Iterable[Ack] = (), receiver_name: str | None = None) -> FlushPlan:
    """`receiver_name` (default: the route's) lets a reached escalation level be planned like the route's
    receiver; an alert an ack covers is muted (`ack_suppressed`), so only its resolution is sent."""
    plan = FlushPlan()
    acks = list(acks)
    sources = list(firing_anywhere) if cfg.inhibit_rules else []
    alerts: list[AlertEvent] = []
    route = group.route
    muted_by = route_muted_by(cfg.time_intervals, route.mute_time_intervals, route.active_time_intervals, now) \
        if route.mute_time_intervals or route.active_time_intervals else []
    for a in sorted(group.alerts.values(), key=lambda a: a.fingerprint):
        if muted_by:  # Alertmanager's order: inhibition first, then the time stages, then silences
            if sources and inhibited(cfg.inhibit_rules, a, sources):
                plan.muted.append((a, "inhibited", "inhibited by a firing source alert"))
            else:
                plan.muted.append((a, "muted", "muted by time interval " + ", ".join(muted_by)))
            continue
        ids = silenced_by(silences, a.labels, now)
        if ids:
            plan.muted.append((a, "silenced", "silenced by " + ", ".join(ids)))
        elif sources and inhibited(cfg.inhibit_rules, a, sources):
            plan.muted.append((a, "inhibited", "inhibited by a firing source alert"))
        elif acks and (ack := acked_by(acks, a, now)) is not None:
            plan.muted.append((a, "ack_suppressed", ack_note(ack)))
        else:
            alerts.append(a)
    plan.sent = list(group.alerts.values())
    if not alerts:
        return plan
    firing = {a.fingerprint for a in alerts if a.state == "firing"}
    resolved = {a.fingerprint for a in alerts if a.state == "resolved"}
    receiver = cfg.receivers[receiver_name or group.route.receiver]
    for name, integ in receiver.integrations():
        send_resolved = bool(getattr(integ, "send_resolved", True))
        if not needs_update(log_entry(name), firing, resolved, group.route.repeat_interval, send_resolved, now):
            continue
        plan.log[name] = LogEntry(frozenset(firing), frozenset(resolved), now)
        payload = alerts if send_resolved else [a for a in alerts if a.state == "firing"]
        if payload:
            plan.notifications.append(Notification(
                receiver=receiver.name, integration=name, group_key=group.key, group_labels=group.labels,
                alerts=payload, flush_time=now, external_url=external_url,
                firing_fps=sorted(firing), resolved_fps=sorted(resolved)))
    return plan
