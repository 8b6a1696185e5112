"""The scrape producer: read Prometheus/OpenMetrics endpoints as a Prometheus server would.

Series keep the names Prometheus gives them (see `producers.exposition`), labelled with `job` and
`instance` as Prometheus labels targets, plus the series Prometheus adds to every scrape: `up`,
`scrape_duration_seconds` and `scrape_samples_scraped`. A target that is down is data (`up 0`), never an
exception. `scrape_series` is pure; `scrape_once` does the I/O; `run_scrape_producer` is the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import urlsplit

import aiohttp

from watchkeeper.plumbing.config import ScrapeProducerConfig, ScrapeTargetConfig
from watchkeeper.plumbing.self_metrics import INGEST_DISCARDED, INGEST_REJECTED
from watchkeeper.producers.exposition import parse_exposition_counted
from watchkeeper.producers.probe import BatchSink
from watchkeeper.producers.ticks import wait_next_tick
from watchkeeper.schemas.limits import IngestLimits, LimitError, check_request_size, keep_within
from watchkeeper.schemas.samples import SampleBatch, SeriesBlock

log = logging.getLogger("watchkeeper.produce.scrape")

# Prometheus' own Accept header (2.x): OpenMetrics first, then the 0.0.4 text format.
ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
          "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def instance_label(url: str) -> str:
    """`host:port` of the URL, the default port filled in, as Prometheus 2.x sets `instance`."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port or _DEFAULT_PORTS.get(parts.scheme, 80)}"


def scrape_labels(target: ScrapeTargetConfig) -> dict[str, str]:
    """The target labels; the target's own `labels` win, even over `job` and `instance`."""
    return {"job": target.job, "instance": instance_label(target.url), **target.labels}


def scrape_series(target: ScrapeTargetConfig, scraped: list[SeriesBlock], *, up: bool, duration: float,
                  samples: int, now: float) -> list[SeriesBlock]:
    """The scraped series followed by Prometheus' per-scrape series, all at `now`."""
    labels = scrape_labels(target)

    def gauge(name: str, value: float) -> SeriesBlock:
        return SeriesBlock(name=name, labels=labels, ts=[now], values=[float(value)])

    return [*scraped, gauge("up", 1.0 if up else 0.0), gauge("scrape_duration_seconds", duration),
            gauge("scrape_samples_scraped", samples)]


async def scrape_once(target: ScrapeTargetConfig, session: aiohttp.ClientSession, now: float,
                      limits: IngestLimits | None = None) -> list[SeriesBlock]:
    """Scrape `target` once; any failure (refused, timeout, non-2xx, bad text) is `up 0` and no samples.

    As in Prometheus, a scrape that does not parse, or has more series or samples than `limits` allow
    (Prometheus' `sample_limit`), is dropped whole rather than stored in part; series over a label limit and
    points out of time bounds (`windows.max_future`) are left out and counted, as Prometheus does with
    out-of-bounds samples.
    """
    limits = limits or IngestLimits()
    scraped: list[SeriesBlock] = []
    up, samples = False, 0
    started = time.perf_counter()
    try:
        # One deadline for the whole scrape, body included, as Prometheus' scrape_timeout is.
        async with asyncio.timeout(target.timeout), session.get(
            target.url, headers={"Accept": ACCEPT}, timeout=aiohttp.ClientTimeout(total=None),
        ) as resp:
            resp.raise_for_status()
            text = await resp.text(encoding=resp.charset or "utf-8", errors="replace")
        parsed = parse_exposition_counted(text, now, scrape_labels(target),
                                          openmetrics=resp.content_type == "application/openmetrics-text")
        try:
            check_request_size(len(parsed.blocks), sum(len(b.ts) for b in parsed.blocks), limits)
        except LimitError as exc:
            INGEST_REJECTED.labels("scrape", exc.reason).inc()
            raise
        scraped, dropped = keep_within(parsed.blocks, limits, now)
        for reason, count in dropped.items():
            INGEST_DISCARDED.labels("scrape", reason).inc(count)
        samples, up = parsed.samples, True
        if parsed.skipped or dropped:
            log.debug("scrape %s: %d samples our wire cannot carry were skipped, left out over limits: %s",
                      target.url, parsed.skipped, dropped)
    except Exception as exc:  # a failed scrape is its result, not the producer's failure
        log.debug("scrape %s failed: %s: %s", target.url, type(exc).__name__, exc)
    return scrape_series(target, scraped, up=up, duration=time.perf_counter() - started,
                         samples=samples, now=now)


async def _scrape_loop(target: ScrapeTargetConfig, session: aiohttp.ClientSession, sender: BatchSink,
                       stop: asyncio.Event, limits: IngestLimits) -> None:
    while not stop.is_set():
        blocks = await scrape_once(target, session, time.time(), limits)
        await sender.send(SampleBatch(source="scrape", series=blocks))
        await wait_next_tick(target.interval, stop)


async def run_scrape_producer(settings: ScrapeProducerConfig, limits: IngestLimits, sender: BatchSink, *,
                              stop: asyncio.Event | None = None) -> None:
    """Scrape every `settings.targets` (`producers.scrape.targets`) entry within `limits` at its own interval,
    one batch per scrape, until `stop`.

    The sender's lifecycle belongs to the caller, so several producers can share one.
    """
    stop = stop or asyncio.Event()
    targets = settings.targets
    if not targets:
        log.info("no scrape targets configured; waiting for stop")
        await stop.wait()
        return
    async with aiohttp.ClientSession() as session, asyncio.TaskGroup() as group:
        for target in targets:
            group.create_task(_scrape_loop(target, session, sender, stop, limits))
    log.info("scrape producer stopped after scraping %d targets", len(targets))
