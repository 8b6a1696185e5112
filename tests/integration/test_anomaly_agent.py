"""Given window aggregates on wk.aggregates and sample batches on wk.samples, each with a level shift, a
real worker (`python -m watchkeeper worker`) on the real broker publishes on wk.alerts exactly the alert
transitions the pure core computes for those series (pending at the shift, firing after `for`,
resolved once the detector has learnt the new level), with `source: anomaly` and key = fingerprint:
for rules on raw samples, on aggregates produced here, and on the aggregates the worker's own window
agent makes of the samples. It keeps going past a message it cannot read, and a restarted worker
resumes every series where it was."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import numpy as np
from aiokafka import AIOKafkaProducer

from tests.conftest import write_config
from tests.integration.kafka_io import consume_until
from watchkeeper.core.anomaly_rules import load_anomaly_text
from watchkeeper.core.anomaly_scoring import AnomalyScorer
from watchkeeper.plumbing.config import Config
from watchkeeper.schemas import (
    AlertEvent,
    SampleBatch,
    SeriesBlock,
    WindowAggregate,
    decode,
    encode,
    format_series_id,
    series_id,
)
from watchkeeper.schemas.aggregates import SketchBins

T0, STEP = 1_700_000_000.0, 10.0
N, SHIFT = 2600, 2000

RULES = """anomaly:
  - name: api
    rules:
      - alert: LatencyShift
        selector: 'latency{job="api"}'
        input: aggregates
        field: p95
        threshold: 0.999
        detector: calibrated   # a calibrated rarity: 0.999 = 1 in 1,000 points
        for: 1m
        labels: {severity: high}
        annotations: {summary: "{{ $labels.instance }} p95 is unusual"}
  - name: hosts
    rules:
      - alert: CpuShift
        selector: 'cpu{host="a"}'
        input: samples
        threshold: 0.999
        detector: calibrated   # a calibrated rarity: 0.999 = 1 in 1,000 points
        for: 1m
      - alert: CpuWindowShift     # the same samples, through the window agent's 10 s aggregates
        selector: 'cpu{host="a"}'
        input: aggregates
        field: mean
        threshold: 0.999
        detector: calibrated   # a calibrated rarity: 0.999 = 1 in 1,000 points
        for: 1m
"""


def level_shift() -> np.ndarray:
    x = 100 + np.random.default_rng(0).normal(0, 2, N)
    x[SHIFT:] += 30
    return x


def aggregate(labels: dict[str, str], i: int, p95: float) -> bytes:
    return encode(WindowAggregate(
        series_id=format_series_id(series_id("latency", labels)), name="latency", labels=labels,
        start=T0 + STEP * (i - 1), end=T0 + STEP * i, count=10, sum=900.0, min=80.0, max=p95 + 1, last=90.0,
        p50=90.0, p90=p95 - 1, p95=p95, p99=p95 + 1, sketch=SketchBins()))


async def produce_all(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]], partition: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        sent = [await producer.send(topic, value, key=key, partition=partition) for key, value in messages]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def expected(alert: str, who: dict[str, str], first: int = 0, shift: float = 0.0) -> list[tuple[str, str, float]]:
    """The pure core's transitions for the level-shift series from point `first`, its times + `shift`."""
    rule = next(r for g in load_anomaly_text(RULES) for r in g.rules if r.alert == alert)
    ts = T0 + STEP * np.arange(first, N) + shift
    events = AnomalyScorer().score(rule, "s", who, ts, level_shift()[first:]).events
    return [(alert, e.state, e.event_time) for e in events]


def start_worker(cfg: Config, tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    path = write_config(cfg, tmp_path / "watchkeeper.yaml")
    with open(tmp_path / f"{name}.log", "wb") as log:
        return subprocess.Popen([sys.executable, "-m", "watchkeeper", "worker", "--config", str(path),
                                 "--loglevel", "info"], stdout=log, stderr=subprocess.STDOUT)


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def anomaly_config(base: Config, tmp_path: Path) -> Config:
    cfg = base.model_copy(deep=True)
    rules_file = tmp_path / "anomaly.yml"
    rules_file.write_text(RULES)
    cfg.anomaly.files = [str(rules_file)]
    cfg.anomaly.batch_seconds = 0.1
    return cfg


def latency_messages(first: int, stop: int) -> list[tuple[bytes, bytes]]:
    labels = {"job": "api", "instance": "web-1"}
    key = format_series_id(series_id("latency", labels)).encode()
    x = level_shift()
    return [(key, aggregate(labels, i, float(x[i]))) for i in range(first, stop)]


def test_aggregates_and_samples_in_alert_events_out(wk_config: Config, tmp_path: Path) -> None:
    cfg = anomaly_config(wk_config, tmp_path)
    t = cfg.kafka.topics
    x = level_shift()
    aggregates = [(b"k", b"{not json"), *latency_messages(1, N)]
    samples = []
    for start in range(0, N, 100):
        ts = (T0 + STEP * np.arange(start, start + 100)).tolist()
        batch = SampleBatch(source="host-a", labels={"host": "a"},
                            series=[SeriesBlock(name="cpu", ts=ts, values=x[start:start + 100].tolist())])
        samples.append((b"host-a", encode(batch)))
    want = sorted(expected("LatencyShift", {"job": "api", "instance": "web-1"}, first=1)
                  + expected("CpuShift", {"host": "a"})
                  # each sample alone in its window [t, t + 10): mean = the sample, at the window's end
                  + expected("CpuWindowShift", {"host": "a"}, shift=STEP))
    assert sorted(s for _, s, _ in want) == ["firing"] * 3 + ["pending"] * 3 + ["resolved"] * 3

    log_path = tmp_path / "worker.log"
    proc = start_worker(cfg, tmp_path, "worker")
    try:
        asyncio.run(produce_all(cfg.kafka.bootstrap, t.aggregates, aggregates, partition=2))
        asyncio.run(produce_all(cfg.kafka.bootstrap, t.samples, samples, partition=5))
        records = asyncio.run(consume_until(cfg.kafka.bootstrap, t.alerts, lambda recs: len(recs) >= len(want),
                                            timeout=180))
        assert proc.poll() is None, log_path.read_text()[-3000:]
    finally:
        stop_worker(proc)
    events = [decode(r.value, AlertEvent) for r in records]
    logs = log_path.read_text(errors="replace")[-4000:]
    assert sorted((e.rule, e.state, e.event_time) for e in events) == want, logs
    assert all(e.source == "anomaly" and r.key == e.fingerprint.encode() for e, r in zip(events, records, strict=True))
    latency = [e for e in events if e.rule == "LatencyShift"]
    assert latency[0].event_time == T0 + STEP * SHIFT and latency[0].state == "pending"
    assert latency[0].labels == {"job": "api", "instance": "web-1", "severity": "high", "alertname": "LatencyShift"}
    assert latency[0].annotations == {"summary": "web-1 p95 is unusual"}
    assert {e.labels["host"] for e in events if e.rule.startswith("Cpu")} == {"a"}


def test_a_restarted_worker_resumes_each_series_from_the_table(wk_config: Config, tmp_path: Path) -> None:
    """Stopped after the alert went pending, a new worker fires and resolves it at the same event times:
    the detector's and the alert's state came back from the Faust table (a fresh detector would stay
    quiet for 320 points), and nothing is sent twice."""
    cfg = anomaly_config(wk_config, tmp_path)
    t = cfg.kafka.topics
    want = expected("LatencyShift", {"job": "api", "instance": "web-1"}, first=1)
    assert [s for _, s, _ in want] == ["pending", "firing", "resolved"]

    def alerts(n: int) -> list[AlertEvent]:
        recs = asyncio.run(consume_until(cfg.kafka.bootstrap, t.alerts, lambda r: len(r) >= n, timeout=180))
        return [decode(r.value, AlertEvent) for r in recs]

    first = start_worker(cfg, tmp_path, "first")
    try:
        asyncio.run(produce_all(cfg.kafka.bootstrap, t.aggregates, latency_messages(1, SHIFT + 3), partition=4))
        assert [e.state for e in alerts(1)] == ["pending"], (tmp_path / "first.log").read_text()[-3000:]
    finally:
        stop_worker(first)
    second = start_worker(cfg, tmp_path, "second")
    try:
        asyncio.run(produce_all(cfg.kafka.bootstrap, t.aggregates, latency_messages(SHIFT + 3, N), partition=4))
        alerts(3)
        # Then everything on the topic a few seconds later: anything sent twice would be there by now.
        records = asyncio.run(consume_until(cfg.kafka.bootstrap, t.alerts, lambda r: False, timeout=5))
    finally:
        stop_worker(second)
    events = [decode(r.value, AlertEvent) for r in records]
    assert [("LatencyShift", e.state, e.event_time) for e in events] == want, \
        (tmp_path / "second.log").read_text()[-3000:]
