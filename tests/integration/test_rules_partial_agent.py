"""The rules' partial stage on the real broker: given samples on two of the eight samples partitions, a
worker running the stage (`tests.integration.partial_worker`) writes to `<app_id>-rule-partials`
exactly the records the step makes of those messages (same keys, values, `wk-wm` headers, numbered
1, 2, ... per partition), partials partition p from samples partition p, and `empty: true` once on
each partition that never had a sample. Killed (SIGKILL) after the first half and started again over the
second, it loses and doubles no record."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from tests.conftest import write_config
from tests.integration.kafka_io import consume_until
from watchkeeper.agents.rules_partial_agent import partials_topic
from watchkeeper.agents.rules_partial_step import HEARTBEAT_KEY, PartialStep
from watchkeeper.agents.rules_wiring import load_rules
from watchkeeper.commands.worker import rules_agent_settings
from watchkeeper.core.rules.unit_plans import unit_plans
from watchkeeper.plumbing.config import Config
from watchkeeper.plumbing.topics import ensure_topics
from watchkeeper.runtime.exactly_once import seq_of
from watchkeeper.schemas.codec import encode
from watchkeeper.schemas.samples import SampleBatch, SeriesBlock

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000.0
RULES = """
groups:
- name: rates
  interval: 10s
  rules:
  - record: job:requests:rate1m
    expr: sum by (job) (rate(http_requests_total[1m]))
  - alert: Busy
    expr: job:requests:rate1m > 1
- name: up
  interval: 30s
  rules:
  - alert: Down
    expr: up == 0
"""
BUSY = (0, 1)  # samples partitions with data; the other six never get a sample


def messages(partition: int, start: int, stop: int) -> list[tuple[bytes, bytes]]:
    out = []
    for k in range(start, stop, 5):
        for src in (f"host{partition}a", f"host{partition}b"):
            labels = {"job": "api", "instance": src}
            blocks = [SeriesBlock(name="http_requests_total", labels=labels, kind="counter", ts=[T0 + k],
                                  values=[float(3 * k)]),
                      SeriesBlock(name="up", labels=labels, ts=[T0 + k], values=[1.0])]
            out.append((src.encode(), encode(SampleBatch(source=src, series=blocks))))
    return out


async def produce(bootstrap: str, topic: str, by_partition: dict[int, list[tuple[bytes, bytes]]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for p, msgs in by_partition.items():
            sent = [await producer.send(topic, value, key=key, partition=p) for key, value in msgs]
            await asyncio.gather(*sent)
    finally:
        await producer.stop()


def start(cfg: Config, tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    path = write_config(cfg, tmp_path / "watchkeeper.yaml")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(tmp_path / f"{name}.log", "wb") as log:
        return subprocess.Popen([sys.executable, "-m", "tests.integration.partial_worker", "--config", str(path)],
                                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)


def expected(cfg: Config, samples: list[ConsumerRecord]) -> dict[int, list[tuple[bytes, bytes, bytes]]]:
    """What the step makes of the samples as the broker holds them (its record timestamps the processing
    times), a message at a time; and the idle tick of each partition without samples."""
    loaded = load_rules(rules_agent_settings(cfg))
    assert loaded is not None
    step = PartialStep(unit_plans(loaded.units, loaded.groups), loaded.limits, retention=loaded.history,
                       heartbeat=cfg.rules.heartbeat_seconds)
    out: dict[int, list[tuple[bytes, bytes, bytes]]] = {}
    for p in range(8):
        step.restore(p, None)
        recs = sorted((r for r in samples if r.partition == p), key=lambda r: r.offset)
        made = [step.process_records(p, [(r.offset, r.key, r.value, r.timestamp / 1000.0)], 0.0) for r in recs]
        made.append(step.tick(p))
        out[p] = [(k, v, dict(h)["wk-wm"]) for o in made for (k, v), h in zip(o.records, o.headers, strict=True)]
    return out


def on_partials(records: list[ConsumerRecord]) -> dict[int, list[tuple[bytes, bytes, bytes]]]:
    out: dict[int, list[tuple[bytes, bytes, bytes]]] = {p: [] for p in range(8)}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        out[r.partition].append((r.key, r.value, dict(r.headers)["wk-wm"]))
    return out


def test_partial_stage_writes_each_partitions_partials_exactly_once(wk_config: Config, tmp_path: Path) -> None:
    cfg = wk_config
    (tmp_path / "rules.yml").write_text(RULES)
    cfg.rules.files = [str(tmp_path / "rules.yml")]
    cfg.rules.checkpoint_seconds = 0.5
    topic, bootstrap = partials_topic(cfg.worker.app_id), cfg.kafka.bootstrap

    def ticks_up_to(t: float) -> Callable[[list[ConsumerRecord]], bool]:
        def done(records: list[ConsumerRecord]) -> bool:
            got = on_partials(records)
            return (all(any(k != HEARTBEAT_KEY and orjson.loads(v)["t"] >= t for k, v, _ in got[p]) for p in BUSY)
                    and all(got[p] for p in range(8) if p not in BUSY))
        return done

    # Made before anything reads it (a reader of a missing topic makes tansu create it with 4 partitions).
    asyncio.run(ensure_topics(bootstrap, {topic: 8}))
    asyncio.run(produce(bootstrap, cfg.kafka.topics.samples, {p: messages(p, 0, 900) for p in BUSY}))
    first = start(cfg, tmp_path, "first")
    try:
        half = asyncio.run(consume_until(bootstrap, topic, ticks_up_to(T0 + 880), timeout=120))
        assert ticks_up_to(T0 + 880)(half), (tmp_path / "first.log").read_text()[-3000:]
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    asyncio.run(produce(bootstrap, cfg.kafka.topics.samples, {p: messages(p, 900, 1800) for p in BUSY}))
    second = start(cfg, tmp_path, "second")
    try:
        got = asyncio.run(consume_until(bootstrap, topic, ticks_up_to(T0 + 1780), timeout=120))
    finally:
        second.terminate()
        try:
            second.wait(timeout=30)
        except subprocess.TimeoutExpired:
            second.kill()
            second.wait()
    samples = asyncio.run(consume_until(bootstrap, cfg.kafka.topics.samples, lambda r: len(r) >= 1440, timeout=30))
    want = expected(cfg, samples)
    assert on_partials(got) == want, (tmp_path / "second.log").read_text()[-3000:]
    for p in range(8):
        seqs = [seq_of(r.headers) for r in sorted(got, key=lambda r: r.offset) if r.partition == p]
        assert seqs == list(range(1, len(want[p]) + 1))
    for p in range(8):
        if p not in BUSY:
            assert [(k, orjson.loads(v)) for k, v, _ in want[p]] == [(HEARTBEAT_KEY, {"v": 1, "empty": True})]
