"""The notification sink: `wk.alerts` -> routing, grouping, inhibition, silences -> a durable outbox ->
webhook, Slack, email, PagerDuty, Opsgenie, VictorOps, Pushover, SNS, Teams, Discord, Telegram, Webex,
WeChat, Alertmanager, SMS and command hooks, every attempt recorded on
`wk.notifications` (and so in ClickHouse's `notifications` table).

Order of durability: an alert is stored before its offset is committed; a notification is written to
the outbox (with the notification-log entry that stops it being planned twice) before it is sent, and
acknowledged after a 2xx. So a crash loses nothing and never resends what was acknowledged; a send
that happened just before a crash, unacknowledged, is sent again (at-least-once).

Bounded (core/notify/outbox_bounds.py): what is finished is pruned after `notify.retention_seconds`, a
batch per turn of the loop, and at most `notify.outbox_max_pending` notifications wait; beyond that the
newest are dead-lettered, recorded and counted, never dropped silently."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson

from watchkeeper.core.errors import SourceError
from watchkeeper.core.notify.acks import Ack, ack_note
from watchkeeper.core.notify.config import NotifyConfig, load_notify_config_file
from watchkeeper.core.notify.dispatch import Dispatcher, Group, with_priority
from watchkeeper.core.notify.escalation import EscalationState, Escalator, describe
from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.outbox_bounds import Flush, PruneSchedule, admit, keep_refused, retention_cutoff
from watchkeeper.core.notify.pipeline import plan_flush
from watchkeeper.core.notify.remediation import FAILED, outcome_alerts
from watchkeeper.core.notify.sms import sms_secrets
from watchkeeper.core.notify.stale_events import Applied, stale_reason
from watchkeeper.plumbing import kafka_clients
from watchkeeper.plumbing.config import KafkaConfig, NotifySinkConfig
from watchkeeper.plumbing.errors import ConfigError
from watchkeeper.plumbing.log_filters import KNOWN_SECRETS, redact
from watchkeeper.plumbing.self_metrics import (
    NOTIFICATION_ERRORS,
    NOTIFY_PENDING,
    NOTIFY_PRUNED,
    NOTIFY_REFUSED,
    NOTIFY_STALE,
)
from watchkeeper.schemas.alerts import AlertEvent
from watchkeeper.schemas.codec import SchemaError, decode, encode
from watchkeeper.schemas.deadletter import DeadLetter
from watchkeeper.schemas.notifications import NotificationRecord
from watchkeeper.sinks.ack_store import AckStore, ack_store_path
from watchkeeper.sinks.channels import Channel, DeliveryError, build_channels
from watchkeeper.sinks.channels.base import HeldBack
from watchkeeper.sinks.channels.command import CommandChannel
from watchkeeper.sinks.escalation_store import EscalationStore
from watchkeeper.sinks.notify_store import NotifyStore, SilenceStore, store_paths
from watchkeeper.sinks.remediation import RemediationResult, clickhouse_samples, remediate

log = logging.getLogger("watchkeeper.notify")


@dataclass(frozen=True)
class NotifySinkSettings:
    """What the sink reads of `watchkeeper.yaml`, picked by the command that starts it (as Prometheus' rule
    manager gets its `ManagerOptions`), so the sink depends on these fields and not on the whole file."""

    kafka: KafkaConfig
    group_id: str  # its consumer group (`<worker.app_id>-notify`)
    notify: NotifySinkConfig
    alertmanager_file: Path | None  # notify.alertmanager_config resolved against the config file; None: not set
    data_path: Path  # the outbox, silences, acks and escalations live under it
    samples_dsn: str  # where a remediation hook's PromQL check reads samples (ClickHouse, read-only)


class NotifySink:
    def __init__(self, settings: NotifySinkSettings, am: NotifyConfig, state_path: Path, silences_path: Path) -> None:
        self.settings, self.am = settings, am
        register_notify_secrets(am)
        self.store = NotifyStore(state_path)
        self.silences = SilenceStore(silences_path)
        self.dispatcher = Dispatcher(am.route)
        self.inflight: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.channels: dict[tuple[str, str], Channel] = {}
        self.sent = self.failed = 0
        self.acks = AckStore(ack_store_path(settings.data_path))
        self.escalations = EscalationStore(state_path)
        self.escalator = Escalator(am.escalation_policies, self.escalations.all())
        self.acks_checked = 0.0
        self.prune = PruneSchedule()  # due now: a start prunes first
        now = time.time()
        for a in self.store.alerts():  # a restart rebuilds the groups; the log stops repeats
            self.dispatcher.insert(a, now)
        for key in [k for k in self.escalator.states if k not in self.dispatcher.groups]:
            self.escalator.end(key)  # its group resolved while the state was being written
            self.escalations.drop(key)

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        consumer = kafka_clients.group_consumer(s.kafka, s.kafka.topics.alerts, group_id=s.group_id,
                                                auto_offset_reset="earliest", fetch_max_wait_ms=20)
        self.producer = kafka_clients.producer(s.kafka, linger_ms=5)
        await consumer.start()
        await self.producer.start()
        async with aiohttp.ClientSession() as session:
            self.open_channels(session)
            log.info("notify sink: %d receivers from %s", len(self.am.receivers), self.am.path)
            self.wakeup = asyncio.Event()
            self.maintain(time.time())
            delivery = asyncio.get_running_loop().create_task(self._delivery_loop(stop, s.notify.parallel_deliveries))
            try:
                while not stop.is_set():
                    batches = await consumer.getmany(timeout_ms=50, max_records=2000)
                    events: list[AlertEvent] = []
                    for records in batches.values():
                        for rec in records:
                            ev = await self._decode(rec.value or b"", rec.topic, rec.partition, rec.offset, rec.key)
                            if ev is not None:
                                events.append(ev)
                    if events:
                        self._take(events, time.time())
                    if batches:
                        await consumer.commit()
                    self._record_acks(time.time())
                    self._flush(time.time())
                    self.maintain(time.time())
                if self.tasks:
                    await asyncio.wait(self.tasks, timeout=10)
            finally:
                delivery.cancel()
                for task in self.tasks:
                    task.cancel()
                await consumer.stop()
                await self.producer.stop()
                self.store.close()
                self.silences.close()
                self.acks.close()
                self.escalations.close()

    def open_channels(self, session: aiohttp.ClientSession) -> None:
        """Every receiver's integrations, sending through `session`."""
        for r in self.am.receivers.values():
            channels = build_channels(r, self.am.global_, session, self.am.route, self.am.notify_templates)
            for name, ch in channels.items():
                self.channels[(r.name, name)] = ch

    async def _decode(self, raw: bytes, topic: str, partition: int, offset: int,
                      key: bytes | None) -> AlertEvent | None:
        try:
            return decode(raw, AlertEvent)
        except SchemaError as exc:
            dl = DeadLetter.of(raw, topic=topic, partition=partition, offset=offset,
                               reason=f"notify sink: {exc}", time=time.time())
            await self.producer.send_and_wait(self.settings.kafka.topics.deadletter, encode(dl), key=key)
            return None

    def _take(self, events: list[AlertEvent], now: float) -> None:
        """Insert the batch's firing/resolved events, skipping any not newer than the transition already
        applied for its fingerprint (a replay delivering an old firing after its resolution was sent would
        otherwise notify "firing" again). Such events are duplicates, not bad input: counted and logged at
        debug, never dead-lettered."""
        keep, seen = [], []
        applied: dict[str, Applied | None] = {}
        for ev in events:
            if ev.state == "pending":
                continue  # Alertmanager never hears of pending alerts
            last = applied[ev.fingerprint] if ev.fingerprint in applied else self.store.applied(ev.fingerprint)
            reason = stale_reason(last, ev.event_time, ev.state)
            if reason is not None:
                NOTIFY_STALE.labels(reason).inc()
                log.debug("alert %s %s at %s skipped (%s than applied %s)", ev.fingerprint, ev.state,
                          ev.event_time, reason, last)
                continue
            applied[ev.fingerprint] = Applied(ev.event_time, ev.state)
            seen.append(ev)  # a resolved not told is still applied: its older firing must not fire later
            if ev.state == "resolved" and self.store.known(ev.fingerprint) is None:
                continue  # resolved before it ever fired here: nothing to tell anyone
            keep.append(with_priority(ev))
        self.store.put_alerts(keep)
        self.store.put_applied(seen, now)
        for ev in keep:
            self.dispatcher.insert(ev, now)

    def _flush(self, now: float) -> None:
        for key in self.escalator.due(now):  # a level is due: flush its group now to notify it
            if key in self.dispatcher.groups:
                self.dispatcher.groups[key].next_flush = now
        deadline = self.dispatcher.next_deadline()
        if deadline is None or deadline > now:
            return
        silences = self.silences.all()
        acks = self.acks.active(now)
        firing = [a for g in self.dispatcher.groups.values() for a in g.alerts.values()
                  if a.state == "firing"] if self.am.inhibit_rules else []
        flushes, gone = [], []
        flushed: dict[str, Group] = {}
        for g in self.dispatcher.due(now):
            flushed[g.key] = g
            receiver = g.route.receiver
            plan = plan_flush(self.am, g, now, firing, silences, functools.partial(self.store.log_entry, receiver,
                              group_key=g.key), self.settings.notify.external_url, acks)
            for a, status, why in plan.muted:
                if a.state == "firing":
                    self._record(Notification(receiver, "-", g.key, g.labels, [a], now), status, 0, why, 0.0)
            if plan.log or plan.notifications:
                flushes.append((receiver, g.key, plan.log, plan.notifications))
            if g.route.escalation:
                muted = {a.fingerprint for a, _, _ in plan.muted}
                unacked = any(a.state == "firing" and a.fingerprint not in muted for a in g.alerts.values())
                st = self.escalator.on_flush(g.key, g.route.escalation, now, unacked, g.labels)
                self._escalation_changed(g, st, now)
            for level_receiver in self.escalator.receivers(g.key):
                if level_receiver == receiver:
                    continue
                lp = plan_flush(self.am, g, now, firing, silences, functools.partial(
                    self.store.log_entry, level_receiver, group_key=g.key), self.settings.notify.external_url, acks,
                    level_receiver)
                if lp.log or lp.notifications:
                    flushes.append((level_receiver, g.key, lp.log, lp.notifications))
            gone += [a.fingerprint for a in plan.sent if a.state == "resolved"]
            self.dispatcher.flushed(g, plan.sent)
            if g.key not in self.dispatcher.groups and (ended := self.escalator.end(g.key)) is not None:
                self.escalations.drop(g.key)
                self._record_escalation(g, ended, "ended, resolved: " + describe(
                    self.am.escalation_policies.get(ended.policy), ended), now)
        if flushes:
            keep_refused(self._enqueue(flushes, now), flushed, self.dispatcher.groups)
        if gone:
            still = {fp for grp in self.dispatcher.groups.values() for fp in grp.alerts}
            self.store.drop_alerts([fp for fp in gone if fp not in still])

    def _enqueue(self, flushes: list[Flush], now: float) -> list[Notification]:
        """Into the outbox while it has room (`notify.outbox_max_pending`); the newest beyond it are refused
        (dead-lettered, recorded, counted) and returned."""
        limit = self.settings.notify.outbox_max_pending
        pending = self.store.pending_count()
        admission = admit(flushes, pending, limit)
        if admission.flushes:
            self.store.enqueue_many(admission.flushes, now)
            self.wakeup.set()
        waiting = pending + sum(len(notes) for _, _, _, notes in admission.flushes)
        NOTIFY_PENDING.set(waiting)
        if admission.refused:
            log.warning("outbox full (%d notifications waiting, notify.outbox_max_pending %d): %d refused and "
                        "dead-lettered", waiting, limit, len(admission.refused))
        for n in admission.refused:
            self._refuse(n, f"outbox full: {waiting} notifications waiting (notify.outbox_max_pending {limit}); "
                            "refused, the group notifies again at its next flush", now)
        return admission.refused

    def _refuse(self, n: Notification, why: str, now: float) -> None:
        """A notification that cannot enter the outbox: on the dead-letter topic with the reason (the
        notification itself as the original), recorded as failed on wk.notifications, and counted."""
        NOTIFY_REFUSED.labels(n.receiver, n.integration).inc()
        self._record(n, "failed", 0, why, 0.0)
        topics = self.settings.kafka.topics
        dl = DeadLetter.of(orjson.dumps(n.to_json()), topic=topics.notifications, partition=-1, offset=-1,
                           reason=f"notify sink: {why}", time=now)
        task = asyncio.get_running_loop().create_task(
            self.producer.send(topics.deadletter, encode(dl), key=n.group_key.encode()))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def maintain(self, now: float) -> None:
        """Prune what `notify.retention_seconds` has passed: one bounded batch per table when a round is due
        (the loop calls this every turn, so a backlog drains a batch per turn and never holds the loop long),
        then give the freed pages back to the file system. Pending rows and active groups' log entries stay."""
        if not self.prune.due(now):
            return
        cutoff = retention_cutoff(now, self.settings.notify.retention_seconds)
        outbox = self.store.prune_outbox(cutoff, self.prune.batch)
        nflog = self.store.prune_log(cutoff, self.prune.batch, self.dispatcher.groups.keys())
        NOTIFY_PRUNED.labels("outbox").inc(outbox)
        NOTIFY_PRUNED.labels("nflog").inc(nflog)
        NOTIFY_PRUNED.labels("applied").inc(self.store.prune_applied(cutoff, self.prune.batch))
        if outbox or nflog:
            self.store.reclaim()
        if self.prune.ran(now, max(outbox, nflog)):
            NOTIFY_PENDING.set(self.store.pending_count())
            if self.store.compact():
                log.info("notify state converted to incremental auto-vacuum: %d bytes", self.store.file_bytes())

    async def _delivery_loop(self, stop: asyncio.Event, parallel: int) -> None:
        """Keep up to `parallel` deliveries in flight, taking due notifications from the outbox."""
        while not stop.is_set():
            self.wakeup.clear()
            started = 0
            room = parallel - len(self.inflight)
            if room > 0:
                for id, attempts, created, note in self.store.due(time.time(), self.inflight, room):
                    self.inflight.add(id)
                    task = asyncio.get_running_loop().create_task(self._attempt(id, attempts, created, note))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
                    started += 1
            if started and len(self.inflight) < parallel:
                await asyncio.sleep(0)  # more may be due right away
                continue
            nxt = self.store.next_due()
            wait = 0.5 if nxt is None else min(0.5, max(0.01, nxt - time.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), timeout=wait)

    async def _attempt(self, id: str, attempts: int, created: float, n: Notification) -> None:
        ch = self.channels.get((n.receiver, n.integration))
        t0 = time.monotonic()
        if isinstance(ch, CommandChannel) and ch.cfg.verify is not None:
            await self._remediate(id, ch, n)
            return
        try:
            if ch is None:
                raise DeliveryError(f"receiver {n.receiver} has no integration {n.integration} any more", False)
            note = await ch.send(n)
        except HeldBack as exc:  # a rate limit (SMS): not sent on purpose, the reason recorded
            self.store.held(id, str(exc), time.time())
            self._record(n, "held", attempts + 1, str(exc), (time.monotonic() - t0) * 1000, id)
        except Exception as exc:
            # A DeliveryError says whether to retry; anything else is a bug in a channel, which must not stop
            # the sink nor retry forever: it is retried like a failure, within give_up_after_seconds.
            if isinstance(exc, DeliveryError):
                retryable, why = exc.retryable, str(exc)
            else:
                log.error("%s %s: unexpected error", n.receiver, n.integration, exc_info=True)
                retryable, why = True, f"unexpected {type(exc).__name__}: {exc}"
            why = redact(why)
            NOTIFICATION_ERRORS.labels(n.receiver, n.integration).inc()
            ms = (time.monotonic() - t0) * 1000
            cfg = self.settings.notify
            if retryable and time.time() - created < cfg.give_up_after_seconds:
                delay = min(cfg.retry_max_seconds, cfg.retry_initial_seconds * 2 ** attempts)
                delay *= 0.5 + random.random() / 2
                asked = getattr(exc, "retry_after", None)  # the peer's Retry-After: never retry sooner
                self.store.retry(id, time.time() + max(delay, min(asked or 0.0, cfg.give_up_after_seconds)), why)
                self._record(n, "retrying", attempts + 1, why, ms, id)
            else:
                self.store.failed(id, why, time.time())
                self.failed += 1
                self._record(n, "failed", attempts + 1, why, ms, id)
            log.warning("%s %s: attempt %d failed: %s", n.receiver, n.integration, attempts + 1, why)
        else:
            self.store.acked(id, time.time())
            self.sent += 1
            self._record(n, "sent", attempts + 1, note or "", (time.monotonic() - t0) * 1000, id)
        finally:
            self.inflight.discard(id)
            self.wakeup.set()

    async def _remediate(self, id: str, ch: CommandChannel, n: Notification) -> None:
        """A hook with `verify:`: run it (cooldown permitting) and check its work; record the outcome, tell
        the `report_to` receivers, and on failure escalate the group to its next level now."""
        t0 = time.monotonic()
        try:
            if n.status != "firing":
                self.store.acked(id, time.time())
                self._record(n, "sent", 1, "resolved: nothing to remediate", 0.0, id)
                return
            try:
                result = await remediate(ch, n, self.escalations,
                                         samples=clickhouse_samples(self.settings.samples_dsn))
            except Exception as exc:  # a bug here must not leave the alert unattended: escalate it
                log.error("%s %s: remediation error", n.receiver, n.integration, exc_info=True)
                result = RemediationResult("remediation_failed", f"{FAILED}: {type(exc).__name__}: {exc}")
            self.store.acked(id, time.time())
            self._record(n, result.status, 1, result.note, (time.monotonic() - t0) * 1000, id)
            if result.status == "remediation_skipped":
                return
            now = time.time()
            outcome = "recovered" if result.status == "remediated" else "failed"
            alerts = outcome_alerts(n.firing(), outcome, result.note[:1000])
            v = ch.cfg.verify
            targets = (v.report_to if v and v.report_to else [n.receiver])
            notes = [Notification(r, name, f"{n.group_key}/remediation", n.group_labels, alerts, now,
                                  self.settings.notify.external_url)
                     for r in targets if r in self.am.receivers
                     for name, _ in self.am.receivers[r].integrations() if not name.startswith("command[")]
            if notes:
                self._enqueue([(r, f"{n.group_key}/remediation", {}, [x for x in notes if x.receiver == r])
                               for r in dict.fromkeys(x.receiver for x in notes)], now)
            g = self.dispatcher.groups.get(n.group_key)
            if outcome == "failed" and g is not None:
                st = self.escalator.escalate_now(g.key, now)
                if st is not None:
                    self._escalation_changed(g, st, now)
                    g.next_flush = now
        finally:
            self.inflight.discard(id)
            self.wakeup.set()

    def _escalation_changed(self, g: Group, st: EscalationState | None, now: float) -> None:
        """Store a started, advanced or held escalation, then record it (stored first: a crash in between
        resumes at the stored level, whose receivers the notification log says were not told yet)."""
        if st is None:
            return
        self.escalations.put(st)
        policy = self.am.escalation_policies.get(st.policy)
        if st.held:
            self._record_escalation(g, st, "held: every firing alert is acknowledged; " + describe(policy, st), now)
        else:
            receivers = ",".join(policy.levels[st.level - 1].receivers) if policy else ""
            self._record_escalation(g, st, f"notifying {receivers}: " + describe(policy, st), now)

    def _record_escalation(self, g: Group, st: EscalationState, note: str, now: float) -> None:
        policy = self.am.escalation_policies.get(st.policy)
        receivers = policy.levels[st.level - 1].receivers if policy else ()
        n = Notification(",".join(receivers) or st.policy, "escalation", g.key, g.labels,
                         [a for a in g.alerts.values()], now)
        self._record(n, "escalated", st.level, note, 0.0, f"{n.notification_id}-L{st.level}")
        log.info("escalation %s: %s", g.key, note)

    def _record_acks(self, now: float) -> None:
        """Record each new ack once on wk.notifications (who, when, comment), whichever way it was made."""
        if now - self.acks_checked < 1.0:
            return
        self.acks_checked = now
        new = self.acks.unrecorded()
        if not new:
            return
        for ack in new:
            covered = [a for g in self.dispatcher.groups.values() for a in g.alerts.values() if ack.covers(a, now)]
            self._emit(self._ack_record(ack, covered), ack.target)
        self.acks.mark_recorded([a.id for a in new])

    @staticmethod
    def _ack_record(ack: Ack, covered: list[AlertEvent]) -> NotificationRecord:
        return NotificationRecord(
            notification_id=ack.id, receiver=ack.by or "unknown", integration="ack", group_key=ack.target,
            status="acknowledged", error=redact(ack_note(ack))[:500], time=ack.created_at,
            alerts=sorted({a.fingerprint for a in covered}), firing=len(covered))

    def _record(self, n: Notification, status: str, attempt: int, error: str, latency_ms: float,
                id: str | None = None) -> None:
        rec = NotificationRecord(
            notification_id=id or n.notification_id, receiver=n.receiver, integration=n.integration,
            group_key=n.group_key, status=status, attempt=max(attempt, 1), error=redact(error)[:500],
            latency_ms=latency_ms, time=time.time(), alerts=[a.fingerprint for a in n.alerts],
            firing=len(n.firing()), resolved=len(n.resolved()))
        self._emit(rec, n.group_key)

    def _emit(self, rec: NotificationRecord, key: str) -> None:
        task = asyncio.get_running_loop().create_task(
            self.producer.send(self.settings.kafka.topics.notifications, encode(rec), key=key.encode()))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def register_notify_secrets(am: NotifyConfig) -> None:
    """Tell the redactor the receivers' secrets: passwords, keys, tokens, and the webhook and Slack URLs,
    which Alertmanager treats as secrets as a whole (their credential is in the path)."""
    for r in am.receivers.values():
        # Slack's api_url and the Discord and Teams webhook_url carry their credential in the path.
        KNOWN_SECRETS.add_config(r.model_dump(), hide_path_keys=("api_url", "webhook_url"))
        for c in r.webhook_configs:
            KNOWN_SECRETS.add_url(c.url, hide_path=True)
        for sc in r.sms_configs:
            for secret in sms_secrets(sc):
                KNOWN_SECRETS.add(secret)
    KNOWN_SECRETS.add_config(am.global_.model_dump(), hide_path_keys=("slack_api_url",))


def open_sink(settings: NotifySinkSettings) -> NotifySink | None:
    """The sink over its Alertmanager file (None without one); a broken file raises ConfigError naming file and line."""
    if settings.alertmanager_file is None:
        return None
    try:
        am = load_notify_config_file(str(settings.alertmanager_file))
    except SourceError as exc:
        raise ConfigError(exc.path, exc.line, exc.field or "(file)", exc.message) from None
    state, silences = store_paths(settings.data_path)
    return NotifySink(settings, am, state, silences)


async def run_notify_sink(settings: NotifySinkSettings, stop: asyncio.Event) -> None:
    sink = open_sink(settings)
    if sink is None:
        log.warning("notify sink: no notify.alertmanager_config in watchkeeper.yaml; alerts are not delivered")
        await stop.wait()
        return
    await sink.run(stop)


__all__ = ["NotifySink", "NotifySinkSettings", "open_sink", "run_notify_sink"]
