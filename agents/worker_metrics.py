"""The worker's self-metrics (`plumbing.self_metrics`): window close latency on each emitted batch,
consumer lag, series held and sources with clocks ahead refreshed by timers. Kept out of the window agent,
whose hot path gets only a counter increment and one call per emitted batch.

Consumer lag is the partition's high watermark (as the last fetch reported it: no extra request, and not
ListOffsets, which tansu answers wrongly) minus the next offset the window state will apply, which is the
agent's own position: Faust's is not, since the agent replays from its snapshot (agents/window_agent.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import faust
import orjson
from faust.types import TP

from watchkeeper.plumbing.self_metrics import (
    CONSUMER_LAG,
    FUTURE_SOURCES_SHOWN,
    SERIES_HELD,
    SKEWED_SOURCES,
    SOURCE_FUTURE_SAMPLES,
    WINDOW_LATENCY,
)

log = logging.getLogger("watchkeeper.windows")
LAG_INTERVAL_SECONDS = 5.0


def window_latency(aggregates: list[tuple[bytes, bytes]], now: float) -> float | None:
    """Seconds from the oldest window end among the batch's first and last aggregates to `now`.

    Only two records are decoded, so this costs the same for 10 windows or 10,000: an advance closes the windows
    of one width step at a time in steady state (all with one end); after a backlog, windows of several steps
    close together and the first or last one is as old as any in the batch, give or take a step."""
    if not aggregates:
        return None
    ends = [float(orjson.loads(aggregates[i][1])["end"]) for i in {0, len(aggregates) - 1}]
    return now - min(ends)


def observe_window_latency(aggregates: list[tuple[bytes, bytes]], now: float) -> None:
    """One histogram observation per emitted batch (never raises: metrics must not stop the worker)."""
    try:
        latency = window_latency(aggregates, now)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return
    if latency is not None:
        WINDOW_LATENCY.observe(max(0.0, latency))


def partition_lags(next_offsets: Mapping[int, int], highwaters: Mapping[int, int | None]) -> dict[int, int]:
    """Messages behind the high watermark per partition, for partitions with both numbers known. An empty
    partition is 0 behind even before the agent has restored it (it restores a partition on its first message)."""
    lags = {}
    for p, hw in highwaters.items():
        if hw is None:
            continue
        nxt = next_offsets.get(p, 0 if hw == 0 else None)
        if nxt is not None:
            lags[p] = max(0, int(hw) - nxt)
    return lags


def register_lag_timer(app: faust.App, topic: str, progress: Mapping[int, Any],
                       interval: float = LAG_INTERVAL_SECONDS,
                       highwater: Callable[[int], int | None] | None = None) -> None:
    """Every `interval` s, set the lag gauge of each owned partition of `topic`; partitions given up are set to 0
    (the gauge sums over live workers, so only the owner's value counts). `highwater(partition)` is whoever
    fetches the partition (the window agent reads through its own consumer, Faust's goes stale): Faust's
    consumer by default."""
    reported: set[int] = set()

    async def consumer_lag() -> None:
        try:
            owned = [tp for tp in app.consumer.assignment() if tp.topic == topic]
        except Exception:  # not started yet, or stopping
            return
        highwaters: dict[int, int | None] = {}
        for tp in owned:
            try:
                highwaters[tp.partition] = (highwater(tp.partition) if highwater is not None
                                            else app.consumer.highwater(TP(topic, tp.partition)))
            except Exception:  # assignment changed under us: next time
                continue
        nexts = {p: prog.offset + 1 for p, prog in list(progress.items())}
        lags = partition_lags(nexts, highwaters)
        for p, lag in lags.items():
            CONSUMER_LAG.labels(topic, str(p)).set(lag)
        for p in reported - set(lags):
            CONSUMER_LAG.labels(topic, str(p)).set(0)
        reported.clear()
        reported.update(lags)

    app.timer(interval, name=f"watchkeeper.consumer_lag.{topic}")(consumer_lag)


def future_by_source(engines: Mapping[int, Any], top: int = FUTURE_SOURCES_SHOWN) -> tuple[int, dict[str, int]]:
    """How many sources had samples refused as `future`, and the `top` of them by count (a bounded label set
    however many sources there are)."""
    counts: dict[str, int] = {}
    for eng in list(engines.values()):
        for name, n in zip(eng.source_names, eng.source_future, strict=True):
            if n and name is not None:
                counts[name] = counts.get(name, 0) + n
    shown = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return len(counts), dict(shown)


def register_source_gauges(app: faust.App, step: Any, interval: float = LAG_INTERVAL_SECONDS) -> None:
    """Every `interval` s: the number of skewed sources, the top ones' `future` counts (sources that left the
    top are set to 0) and the series the step holds."""
    shown: set[str] = set()

    async def source_gauges() -> None:
        n, top = future_by_source(step.engines)
        SKEWED_SOURCES.set(n)
        for name, count in top.items():
            SOURCE_FUTURE_SAMPLES.labels(name).set(count)
        for name in shown - set(top):
            SOURCE_FUTURE_SAMPLES.labels(name).set(0)
        shown.clear()
        shown.update(top)
        SERIES_HELD.set(len(step.registry))

    app.timer(interval, name="watchkeeper.window_sources")(source_gauges)
