"""The producers' shared pacing: wait for the next multiple of an interval, or for stop, whichever is first.

Aligning to interval boundaries (not "interval after the last one") keeps points of every producer on the
same grid, so windows and rates see one point per interval regardless of how long a probe or scrape took.
"""

from __future__ import annotations

import asyncio
import contextlib
import time


async def wait_next_tick(interval: float, stop: asyncio.Event) -> None:
    next_tick = (time.time() // interval + 1) * interval
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, next_tick - time.time()))
