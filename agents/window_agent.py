"""The window agent: `wk.samples` -> closed windows on `wk.aggregates`, bad and late input on
`wk.deadletter`. The logic is in `agents.window_step` and `core.windows`; the delivery contract (a
partition's lifecycle, checkpoints, exactly-once output by `wk-seq`, the feed, revocation) is the
runtime's (`runtime.partition_state`), wired to Faust by `agents.partition_wiring`:

- Checkpoints (table `window-state`) every `snapshot_every_messages` messages or `snapshot_every_seconds`.
- Time: each message's processing time is its Kafka record timestamp (replayed identically). A partition
  without messages for `windows.idle_timeout` (this worker's monotonic clock, checked every second, only
  once it is caught up) gets an idle close (`WindowStep.tick`), replayed at the same point after a restart.
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass

import faust
from faust.types import TP

from watchkeeper.agents.partition_wiring import RAW, FaustPartitionIO, Wiring, wire
from watchkeeper.agents.window_step import WindowLimits, WindowStep
from watchkeeper.agents.worker_metrics import observe_window_latency, register_lag_timer, register_source_gauges
from watchkeeper.plumbing.config import KafkaConfig, WindowsConfig
from watchkeeper.plumbing.self_metrics import DEADLETTERS, SAMPLES_CONSUMED, SAMPLES_REJECTED
from watchkeeper.runtime.partition_state import PartitionRuntime, RuntimeSettings, StepOutput
from watchkeeper.schemas.topics import DEFAULT_TOPICS

RELEASE_EVERY_SECONDS = 60.0  # how often series no partition holds are released from the registry

log = logging.getLogger("watchkeeper.windows")
STATE_TABLE = "window-state"


# Collector thresholds for the worker process: a batch allocates tens of thousands of short-lived lists
# and strings, and at CPython's default (700, 10, 10) young collections run every few hundred of them and
# full ones walk Faust's large heap of long-lived objects often: ~10 % of the worker's CPU in the bench.
GC_THRESHOLDS = (20_000, 50, 1_000)


@dataclass(frozen=True)
class WindowAgentSettings:
    """What the window agent reads of `watchkeeper.yaml`, picked by the command that starts the worker (as
    Prometheus' rule manager gets its `ManagerOptions`), so the agent depends on these and not on the whole file."""

    kafka: KafkaConfig  # the bootstrap and the topic names
    windows: WindowsConfig


def register(app: faust.App, settings: WindowAgentSettings) -> None:
    gc.set_threshold(*GC_THRESHOLDS)
    t, w = settings.kafka.topics, settings.windows
    n = DEFAULT_TOPICS["samples"].partitions  # the state table is co-partitioned with the samples
    samples = app.topic(t.samples, partitions=n, **RAW)
    deadletter = app.topic(t.deadletter, partitions=DEFAULT_TOPICS["deadletter"].partitions, **RAW)
    changelog = app.topic(f"{app.conf.id}-{STATE_TABLE}-changelog", partitions=n, **RAW)
    state = app.Table(STATE_TABLE, partitions=n, key_type=bytes, value_type=bytes, changelog_topic=changelog)
    step = WindowStep(t.samples, limits=WindowLimits(
        width=w.width, allowed_lateness=w.allowed_lateness, max_future=w.max_future, idle_timeout=w.idle_timeout,
        max_series=w.max_series, series_idle=w.series_idle_seconds, max_sources=w.max_sources))
    app.window_step = step  # type: ignore[attr-defined]
    consumed = SAMPLES_CONSUMED.labels(t.samples)
    io = FaustPartitionIO(app, settings.kafka.bootstrap, t.samples, t.aggregates, deadletter, changelog, state,
                          on_sent=lambda records: observe_window_latency([(k, v) for k, v, _ in records],
                                                                         time.time()))
    runtime_settings = RuntimeSettings(every_messages=w.snapshot_every_messages,
                                       every_seconds=w.snapshot_every_seconds, batch_messages=w.batch_messages,
                                       idle_timeout=step.idle_timeout)

    def observe(p: int, out: StepOutput) -> None:
        """Self-metrics of one step."""
        consumed.inc(out.applied)
        for reason, n in out.rejected.items():
            SAMPLES_REJECTED.labels(reason).inc(n)
        for reason, n in out.dead.items():
            DEADLETTERS.labels(reason).inc(n)

    runtime = PartitionRuntime(t.samples, step, io, runtime_settings, observe=observe, label="windows")
    app.window_runtime = runtime  # type: ignore[attr-defined]

    def highwater(p: int) -> int | None:
        """Whoever fetches partition p: the runtime's feed once it is live (Faust's goes stale, paused)."""
        high = runtime.highwater(p)
        return high if high is not None else app.consumer.highwater(TP(t.samples, p))

    register_lag_timer(app, t.samples, step.progress, highwater=highwater)
    register_source_gauges(app, step)
    last_release = [time.monotonic()]

    def release_series() -> None:
        if time.monotonic() - last_release[0] >= RELEASE_EVERY_SECONDS:
            last_release[0] = time.monotonic()
            step.release_series()

    wire(app, runtime, samples, Wiring("watchkeeper.windows", settings.kafka.bootstrap, w.batch_messages,
                                       w.batch_within, every=release_series))
