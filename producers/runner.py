"""One producer process: the chosen producers, one sender and one spool between them and Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from watchkeeper.plumbing.config import ProducersConfig, PushConfig
from watchkeeper.plumbing.http_guard import check_listener
from watchkeeper.producers.sender import BatchSender, SenderSettings, sender_from_settings
from watchkeeper.schemas.limits import IngestLimits

log = logging.getLogger("watchkeeper.produce")
KINDS = ("system", "probe", "scrape", "push")


@dataclass(frozen=True)
class ProducerSettings:
    """What a producer process reads of `watchkeeper.yaml`, picked by the command that starts it (as
    Prometheus' rule manager gets its `ManagerOptions`), so the producers depend on these and not the whole file."""

    producers: ProducersConfig
    limits: IngestLimits  # producers.limits with windows.max_future
    sender: SenderSettings


def enabled_kinds(p: ProducersConfig) -> list[str]:
    """The producers a config asks for: system and push when enabled, probe and scrape when they have targets."""
    wanted = {"system": p.system.enabled, "probe": bool(p.probe.targets), "scrape": bool(p.scrape.targets),
              "push": p.push.enabled}
    return [k for k in KINDS if wanted[k]]


async def start_push_api(push: PushConfig, limits: IngestLimits, sender: BatchSender) -> web.AppRunner:
    from watchkeeper.producers.push_api import create_push_app

    runner = web.AppRunner(create_push_app(sender, token=push.token, max_body_bytes=push.max_body_bytes,
                                           host=push.host, allowed_hosts=tuple(push.allowed_hosts),
                                           limits=limits),
                           access_log=None)
    await runner.setup()
    await web.TCPSite(runner, push.host, push.port).start()
    log.info("push API on http://%s:%d (/api/v1/samples, /metrics/job/<job>, /api/v1/write)", push.host, push.port)
    return runner


async def run_producers(settings: ProducerSettings, kinds: list[str], stop: asyncio.Event) -> dict[str, Any]:
    """Run `kinds` until `stop` is set; returns the sender's final counters."""
    p = settings.producers
    if "push" in kinds:  # refuse an open listener before anything starts
        check_listener("producers.push", p.push.host, p.push.token, "WK_PUSH_TOKEN")
    sender = sender_from_settings(settings.sender, "+".join(kinds))
    await sender.start()
    loops: list[Coroutine[Any, Any, None]] = []
    if "system" in kinds:
        from watchkeeper.producers.system import run_system_producer

        loops.append(run_system_producer(p.system, sender, stop=stop))
    if "probe" in kinds:
        from watchkeeper.producers.probe import run_probe_producer

        loops.append(run_probe_producer(p.probe, sender, stop=stop))
    if "scrape" in kinds:
        from watchkeeper.producers.scrape import run_scrape_producer

        loops.append(run_scrape_producer(p.scrape, settings.limits, sender, stop=stop))
    runner = await start_push_api(p.push, settings.limits, sender) if "push" in kinds else None
    tasks = [asyncio.create_task(c) for c in loops]
    stopped = asyncio.create_task(stop.wait())
    try:
        # A producer loop that dies takes the process down with its error, not silently half of it.
        done, _ = await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopped and not task.cancelled() and task.exception() is not None:
                stop.set()
                raise task.exception()  # type: ignore[misc]
    finally:
        stopped.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=5.0)
        if runner is not None:
            await runner.cleanup()
        await sender.stop()
    stats = sender.stats()
    log.info("producers %s stopped: %s", "+".join(kinds), stats)
    return stats
