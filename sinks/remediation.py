"""Verified remediation, wired: the cooldown kept in the sink's state store, the command run through its
command channel, the verification probed for real (HTTP as the probe producer does, or a command), the
timing driven by `core.notify.remediation.Verification`. The sink records the result and tells whom it
should (`NotifySink._remediate`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import numpy as np

from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.receiver_configs import VerifyConfig
from watchkeeper.core.notify.remediation import (
    FAILED,
    RECOVERED,
    Verification,
    due_for_run,
    promql_healthy,
    selector_names,
)
from watchkeeper.core.promql.series_store import SeriesStore
from watchkeeper.plumbing.config import ProbeTargetConfig
from watchkeeper.producers.probe import probe_once, probe_session
from watchkeeper.reports.clickhouse_reader import get_reader, query_rows
from watchkeeper.sinks.channels.base import DeliveryError
from watchkeeper.sinks.channels.command import CommandChannel
from watchkeeper.sinks.escalation_store import EscalationStore

# (metric names or None for all, since) -> [(name, labels, ts, values)], ts ascending per series
SampleReader = Callable[[list[str] | None, float], list[tuple[str, dict[str, str], list[float], list[float]]]]


def clickhouse_samples(dsn: str) -> SampleReader:
    """Read the samples stored since a time from ClickHouse (the embedded owner's read-only endpoint)."""

    def read(names: list[str] | None, since: float) -> list[tuple[str, dict[str, str], list[float], list[float]]]:
        where = "ts > fromUnixTimestamp64Milli({since:Int64})" + (" AND name IN {names:Array(String)}" if names
                                                                  else "")
        sql = ("SELECT name, labels, groupArray(toFloat64(ts)), groupArray(value) FROM (SELECT name, series_id, "
               f"labels, ts, value FROM samples FINAL WHERE {where} ORDER BY name, series_id, ts) "
               "GROUP BY name, series_id, labels")
        client = get_reader(dsn)
        try:
            rows = query_rows(client, sql, {"since": int(since * 1000), "names": names or []})
        finally:
            client.close()
        return [(r[0], dict(r[1]), list(r[2]), list(r[3])) for r in rows]

    return read


async def promql_health(v: VerifyConfig, samples: SampleReader, since: float, now: float) -> tuple[bool, str]:
    """Evaluate `verify.promql` at `now` over the samples stored after `since` (the command's end)."""
    try:
        series = await asyncio.to_thread(samples, selector_names(v.promql), since)
    except Exception as exc:  # ClickHouse away: not healthy yet, try again at the next interval
        return False, f"cannot read samples: {type(exc).__name__}: {str(exc)[:200]}"
    store = SeriesStore(retention=max(3600.0, now - since + 600))
    for name, labels, ts, values in series:
        store.append(name, labels, np.array(ts), np.array(values))
    return promql_healthy(v.promql, store, now)


@dataclass
class RemediationResult:
    status: str  # remediated | remediation_failed | remediation_skipped
    note: str


async def probe_health(v: VerifyConfig, session: aiohttp.ClientSession | None) -> tuple[bool, str]:
    """One HTTP or command health check: (healthy, what was seen)."""
    if v.http:
        target = ProbeTargetConfig(url=v.http, expect_status=v.expect_status, body_match=v.body_match,
                                   timeout=v.timeout)
        blocks = await probe_once(target, session or probe_session(), time.time())
        values = {b.name: b.values[-1] for b in blocks if b.values}
        ok = values.get("probe_success") == 1.0
        return ok, f"{v.http} answered {int(values.get('probe_http_status_code', 0)) or 'nothing'}"
    try:
        proc = await asyncio.create_subprocess_exec(*v.command, stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
    except (OSError, ValueError) as exc:
        return False, f"cannot run {v.command[0]}: {exc}"
    try:
        code = await asyncio.wait_for(proc.wait(), v.timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        return False, f"{v.command[0]} timed out after {v.timeout:g} s"
    return code == 0, f"{v.command[0]} exited with {code}"


def _at(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%SZ")


async def remediate(ch: CommandChannel, n: Notification, runs: EscalationStore, *,
                    clock: Callable[[], float] = time.time,
                    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
                    samples: SampleReader | None = None) -> RemediationResult:
    """Run the hook for the firing alerts of `n` unless all ran within the cooldown, then verify its work."""
    v = ch.cfg.verify
    assert v is not None
    hook = f"{n.receiver}/{ch.integration}"
    firing = [a.fingerprint for a in n.firing()]
    now = clock()
    last = {fp: runs.last_run(fp, hook) for fp in firing}
    if not due_for_run(last, ch.cfg.cooldown, now):
        when = max(t for t in last.values() if t is not None)
        return RemediationResult("remediation_skipped", f"{hook} ran at {_at(when)}; at most once per "
                                                        f"{ch.cfg.cooldown:g} s per alert (cooldown)")
    runs.ran(firing, hook, now)  # before running: a crash mid-run must not make a restart loop
    try:
        run = await ch.run(n)
    except DeliveryError as exc:
        return RemediationResult("remediation_failed", f"{FAILED}: {exc}")
    if run.returncode != 0:
        return RemediationResult("remediation_failed", f"{FAILED}: {run.summary()}")
    check = Verification(clock(), v.within, v.interval)
    seen = ""
    async with probe_session() if v.http else contextlib.nullcontext() as session:
        while True:
            wait = check.next_probe_at() - clock()
            if wait > 0:
                await sleep(wait)
            if v.promql:
                if samples is None:
                    raise RuntimeError("verify.promql needs a sample reader (ClickHouse)")
                healthy, seen = await promql_health(v, samples, check.started, clock())
            else:
                healthy, seen = await probe_health(v, session)
            if check.observe(healthy, clock()):
                break
    if check.outcome == "recovered":
        return RemediationResult("remediated", f"{RECOVERED}: healthy {clock() - check.started:.1f} s after "
                                               f"{run.summary()} ({seen})")
    return RemediationResult("remediation_failed", f"{FAILED}: still unhealthy {v.within:g} s after "
                                                   f"{run.summary()} (last check: {seen})")
