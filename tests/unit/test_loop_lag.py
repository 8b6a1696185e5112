"""The loop-lag monitor: given a timeline of wakes, expect these blocks reported; and a real block of the loop
named by the stack the sampler thread saw. No timing asserts: the fake clock decides every lateness, and
the real block lasts until the sampler has seen it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time

import pytest

from watchkeeper.plumbing.loop_lag import LoopLagMonitor, summarize, where


class Timeline:
    """A clock that a fake sleep moves: each sleep takes its interval plus the next scripted block."""

    def __init__(self, blocks: list[float]) -> None:
        self.now = 100.0
        self.blocks = blocks

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if not self.blocks:
            raise asyncio.CancelledError
        self.now += seconds + self.blocks.pop(0)


def test_wakes_later_than_warn_are_reported_as_blocks_and_every_wake_is_observed(
        caplog: pytest.LogCaptureFixture) -> None:
    """Given wakes 0, 0.3, 2.5, 0 and 13 s late with warn 1 s: two blocks (2.5 and 13 s), five observations."""
    line = Timeline([0.0, 0.3, 2.5, 0.0, 13.0])
    seen: list[float] = []
    mon = LoopLagMonitor(interval=0.1, warn=1.0, observe=seen.append, clock=line.clock, wall=lambda: 5.0,
                         sleep=line.sleep, sample_stacks=False)
    with caplog.at_level(logging.WARNING, logger="watchkeeper.loop"), contextlib.suppress(asyncio.CancelledError):
        asyncio.run(mon.watch())
    assert seen == pytest.approx([0.0, 0.3, 2.5, 0.0, 13.0])
    assert [late for late, _ in mon.blocks] == pytest.approx([2.5, 13.0])
    assert mon.max_late == pytest.approx(13.0) and mon.wakes == 5
    assert [r.getMessage() for r in caplog.records] == [
        "event loop blocked 2.50 s (a 0.1 s timer woke that late; wall 5.000): no stack sampled",
        "event loop blocked 13.00 s (a 0.1 s timer woke that late; wall 5.000): no stack sampled"]


def test_a_summary_counts_samples_by_entry_and_names_the_commonest_innermost_frame() -> None:
    samples = [("a > b", "np:x:1"), ("c", "np:y:2"), ("a > b", "np:z:3"), ("a > b", "np:z:3")]
    assert summarize(samples) == ("3 of 4 samples in a > b (innermost most often: np:z:3); "
                                  "1 of 4 samples in c (innermost most often: np:y:2)")
    assert summarize([]) == "no stack sampled"


def inner_function() -> tuple[str, str]:
    return where(sys._getframe(), ours=__name__, depth=2)


def outer_function() -> tuple[str, str]:
    return inner_function()


def test_where_names_the_outermost_frames_of_our_code_and_the_innermost_frame() -> None:
    entry, inner = outer_function()
    assert inner.startswith(f"{__name__}:inner_function:")
    # this module's outermost two frames, outermost first: the test calling outer_function
    assert entry.startswith(f"{__name__}:test_where_names_the_outermost_frames_of_our_code_and_the_innermost_frame:")
    assert f" > {__name__}:outer_function:" in entry and "inner_function" not in entry


def hold_the_loop(mon: LoopLagMonitor) -> None:
    """Blocks the loop (no await) until the sampler thread has sampled it twice."""
    assert mon.sampler is not None
    deadline = time.monotonic() + 60
    while sum("hold_the_loop" in inner for _, inner in mon.sampler.samples) < 2:
        if time.monotonic() > deadline:
            raise AssertionError("the sampler never sampled the blocked loop")
        time.sleep(0.01)  # the GIL is released, the loop thread stays inside this function


def test_a_real_block_is_reported_with_the_stack_that_held_the_loop() -> None:
    async def run() -> LoopLagMonitor:
        mon = LoopLagMonitor(interval=0.05, warn=0.0, sample_after=0.2, sample_every=0.01)
        watch = asyncio.create_task(mon.watch())
        await asyncio.sleep(0.1)  # the watch is sleeping: its next wake waits for the block below
        hold_the_loop(mon)
        while not mon.blocks or "hold_the_loop" not in mon.blocks[-1][1]:
            await asyncio.sleep(0.05)
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        return mon

    mon = asyncio.run(run())
    late, place = mon.blocks[-1]
    assert f"{__name__}:hold_the_loop:" in place
    assert late > 0.0
    assert mon.sampler is not None
    mon.sampler.join(10)
    assert not mon.sampler.is_alive()  # the watch's end stops its thread
