"""Throughput of the anomaly agent's scoring path vs the pure detector, measured in the same run.

    PYTHONPATH=. python bench/anomaly/agent_throughput.py

The agent path is `agents.anomaly_step.AnomalyStep` on encoded Kafka message values (everything the
agent does but the broker): decode, match the rule's selector, gather each series' points over a batch
of messages, load the (rule, series) state, score the series' points in one detector call, run the alert
state machine where it can change, and serialise every changed state for the table. Two inputs:

- samples: `SampleBatch` messages, 100 series x 2,000 points at 10 s, one message per series per 100
  points; the agent flushes every 100 messages, so each detector call scores 100 points of a series;
- aggregates: one `WindowAggregate` per message (one point), 100 series x 1,000 windows; the agent takes
  2,500 messages at a time, so each detector call scores 25 points (a backlog being caught up);
- aggregates live: the same, one window of every series per batch (what a worker keeping up with 10 s
  windows sees: all series' windows close together), so each detector call scores ONE point (first
  100 windows only).

The baseline is the same detector (`calibrated`, named in the rules: the heaviest state) scoring exactly
the same per-series chunks
(no decoding, no state, no alerts), one detector per series, in the same run. Best of 3 runs (the
machine is shared). The agent path includes checkpoints (every changed state to bytes, offsets markers):
every 3rd batch live (10 s windows, `anomaly.checkpoint_seconds` 30), every 10th batch on a backlog.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from watchkeeper.agents.anomaly_step import AnomalyStep
from watchkeeper.core.anomaly_rules import load_anomaly_text
from watchkeeper.core.detectors import make_detector
from watchkeeper.schemas import SampleBatch, SeriesBlock, WindowAggregate, encode, format_series_id, series_id
from watchkeeper.schemas.aggregates import SketchBins

SERIES, POINTS, CHUNK = 100, 2000, 100
AGG_POINTS, AGG_BATCH = 1000, 2500
LIVE_WINDOWS = 100
T0, STEP = 1_700_000_000.0, 10.0

RULES = """anomaly:
  - name: bench
    rules:
      - alert: Samples
        selector: 'latency{job="api"}'
        input: samples
        threshold: 0.999
        detector: calibrated
        for: 1m
      - alert: Windows
        selector: 'latency{job="api"}'
        input: aggregates
        field: p95
        threshold: 0.999
        detector: calibrated
        for: 1m
"""


def series_values(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = 100 + 10 * np.sin(2 * np.pi * np.arange(n) / 8640) + rng.normal(0, 3, (SERIES, n))
    x[:, rng.integers(0, n, 20)] += 40
    return x


def sample_messages(x: np.ndarray) -> list[list[bytes]]:
    """Flushes of the agent: each a list of messages, one per series, of CHUNK points."""
    flushes = []
    for start in range(0, POINTS, CHUNK):
        ts = (T0 + STEP * np.arange(start, start + CHUNK)).tolist()
        flushes.append([encode(SampleBatch(source=f"web-{s}", labels={"job": "api", "instance": f"web-{s}"},
                                           series=[SeriesBlock(name="latency", ts=ts,
                                                               values=x[s, start:start + CHUNK].tolist())]))
                        for s in range(SERIES)])
    return flushes


def aggregate_messages(x: np.ndarray, batch: int = AGG_BATCH) -> list[list[bytes]]:
    msgs = []
    ids = [format_series_id(series_id("latency", {"job": "api", "instance": f"web-{s}"})) for s in range(SERIES)]
    for i in range(x.shape[1]):
        for s in range(SERIES):
            v = float(x[s, i])
            msgs.append(encode(WindowAggregate(
                series_id=ids[s], name="latency", labels={"job": "api", "instance": f"web-{s}"},
                start=T0 + STEP * i, end=T0 + STEP * (i + 1), count=10, sum=10 * v, min=v, max=v, last=v,
                p50=v, p90=v, p95=v, p99=v, sketch=SketchBins())))
    return [msgs[i:i + batch] for i in range(0, len(msgs), batch)]


def best(run: Callable[[], int], repeat: int = 3) -> float:
    rates = []
    for _ in range(repeat):
        t = time.perf_counter()
        n = run()
        rates.append(n / (time.perf_counter() - t))
    return max(rates)


def agent_samples(flushes: list[list[bytes]], checkpoint_every: int = 10) -> int:
    step = AnomalyStep([r for g in load_anomaly_text(RULES) for r in g.rules], "samples")
    offset = 0
    for n, msgs in enumerate(flushes, 1):
        step.process_records(0, [(offset + i, b"web", m, 0.0) for i, m in enumerate(msgs)], 0.0)
        offset += len(msgs)
        if n % checkpoint_every == 0:
            step.snapshot(0)
    return step.points


def agent_aggregates(flushes: list[list[bytes]], checkpoint_every: int = 10) -> int:
    step = AnomalyStep([r for g in load_anomaly_text(RULES) for r in g.rules], "aggregates")
    offset = 0
    for n, msgs in enumerate(flushes, 1):
        step.process_records(0, [(offset + i, None, m, 0.0) for i, m in enumerate(msgs)], 0.0)
        offset += len(msgs)
        if n % checkpoint_every == 0:
            step.snapshot(0)
    return step.points


def detector_chunks(x: np.ndarray, chunk: int) -> int:
    """The pure detector over the same per-series chunks, one detector per series."""
    dets = [make_detector("calibrated") for _ in range(SERIES)]
    n = x.shape[1]
    ts = T0 + STEP * np.arange(n)
    for start in range(0, n, chunk):
        for s in range(SERIES):
            dets[s].score_batch(ts[start:start + chunk], x[s, start:start + chunk])
    return SERIES * n


def main() -> None:
    x = series_values(POINTS)
    xs, xa = x, x[:, :AGG_POINTS]
    s_msgs, a_msgs = sample_messages(xs), aggregate_messages(xa)
    live_msgs = aggregate_messages(xa[:, :LIVE_WINDOWS], batch=SERIES)
    per_series = AGG_BATCH // SERIES
    rows = [
        ("samples: agent path (decode, match, score, alerts, state bytes)", best(lambda: agent_samples(s_msgs))),
        (f"samples: calibrated alone, same {CHUNK}-point chunks", best(lambda: detector_chunks(xs, CHUNK))),
        (f"aggregates: agent path, {AGG_BATCH} messages per batch", best(lambda: agent_aggregates(a_msgs))),
        (f"aggregates: calibrated alone, same {per_series}-point chunks",
         best(lambda: detector_chunks(xa, per_series))),
        ("aggregates live: agent path, one window per series per batch", best(lambda: agent_aggregates(live_msgs, 3))),
        ("aggregates live: calibrated alone, one point per call",
         best(lambda: detector_chunks(xa[:, :LIVE_WINDOWS], 1))),
    ]
    print("| path | points/s | vs calibrated alone on the same chunks |")
    print("|---|---|---|")
    base = {"samples": rows[1][1], "aggregates": rows[3][1], "aggregates live": rows[5][1]}
    for label, rate in rows:
        print(f"| {label} | {rate:,.0f} | {rate / base[label.split(':')[0]]:.2f}x |")


if __name__ == "__main__":
    main()
