"""Delay from a sample's arrival on wk.samples to its alert on wk.alerts, at half the worker's max rate.

Real tansu broker, the real rules agent (`RulesRunner`, the code the worker runs, in this process).
1. Max rate: a backlog of batches (`--series` series per batch, one batch per event-time second, spread
   over 8 source keys) is put on the samples topic first; the agent reads it as fast as it can while
   evaluating `--rules` rules each second of event time. Samples/s = max rate.
2. Delay: on fresh topics, batches are produced live at half that rate with event time = wall time;
   every 4 s a `trigger` gauge goes to 1 for 2 s (rule `trigger > 0`, no `for`). For each rise: wall time
   from sending its first 1 to the agent's `firing` alert on wk.alerts, and the event-time part (alert
   tick - sample time).
   Event time only moves when every source's samples are newer than allowed_lateness, so the delay is
   at least allowed_lateness + up to one rule interval, plus processing.

Run: PYTHONPATH=. python bench/rules/alert_delay.py [--series 2000] [--rules 10] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import orjson
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from watchkeeper.agents.rules_agent import RulesRunner, rule_topics
from watchkeeper.agents.rules_wiring import load_rules
from watchkeeper.plumbing.broker import free_port, start_broker
from watchkeeper.plumbing.config import Config
from watchkeeper.plumbing.topics import ensure_topics, topic_plan
from watchkeeper.schemas import AlertEvent, SampleBatch, SeriesBlock, decode, encode

SOURCES = 8


def rules_yaml(n_rules: int) -> str:
    rules: list[dict[str, str]] = [{"alert": "Trigger", "expr": "trigger > 0"}]
    for i in range(n_rules - 1):
        rules.append({"record": f"job:load:avg{i}", "expr": f"avg by (job) (avg_over_time(load[{1 + i % 5}m]))"})
    return yaml.safe_dump({"groups": [{"name": "bench", "interval": "1s", "rules": rules}]}, sort_keys=False)


def config(bootstrap: str, rules: Path, tmp: Path, lateness: float) -> Config:
    suffix = uuid.uuid4().hex[:8]
    cfg = Config(data_dir=str(tmp / suffix))
    cfg.kafka.bootstrap = bootstrap
    cfg.kafka.session_timeout = 6.0
    for key in ("samples", "aggregates", "alerts", "notifications", "deadletter"):
        setattr(cfg.kafka.topics, key, f"b{suffix}.{key}")
    cfg.worker.app_id = f"bench-{suffix}"
    cfg.windows.allowed_lateness = lateness
    cfg.rules.files = [str(rules)]
    cfg.rules.shards = 1
    return cfg


def batches(series: int, ts: float, trigger: bool) -> list[tuple[bytes, bytes]]:
    """One event-time second: `series` load series over SOURCES sources, and the trigger gauge."""
    out = []
    per = series // SOURCES
    rng = np.random.default_rng(int(ts))
    for s in range(SOURCES):
        blocks = [SeriesBlock(name="load", labels={"instance": f"i{s}-{j}"}, ts=[ts],
                              values=[float(rng.random())]) for j in range(per)]
        if s == 0:
            blocks.append(SeriesBlock(name="trigger", ts=[ts], values=[1.0 if trigger else 0.0]))
        out.append((f"src-{s}".encode(), encode(SampleBatch(source=f"src-{s}", labels={"job": f"j{s % 4}"},
                                                            series=blocks))))
    return out


async def create_topics(cfg: Config) -> None:
    shards, state, _ = rule_topics(cfg)
    await ensure_topics(cfg.kafka.bootstrap, {**topic_plan(cfg.kafka.topics), shards: 1, state: 1})


async def start_runner(cfg: Config) -> tuple[RulesRunner, asyncio.Task[None]]:
    await create_topics(cfg)
    loaded = load_rules(cfg)
    assert loaded is not None
    runner = RulesRunner(cfg, loaded.step_factory)
    task = asyncio.create_task(runner.run())
    return runner, task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def max_rate(cfg: Config, series: int, seconds: int) -> float:
    await create_topics(cfg)
    producer = AIOKafkaProducer(bootstrap_servers=cfg.kafka.bootstrap, linger_ms=20,
                                max_request_size=4 * 1024 * 1024)
    await producer.start()
    t0 = float(int(time.time()) - 3600)
    for k in range(seconds):
        for key, value in batches(series, t0 + k, trigger=False):
            await producer.send(cfg.kafka.topics.samples, value, key=key)
    await producer.flush()
    await producer.stop()
    runner, task = await start_runner(cfg)
    await runner.started.wait()
    begin = time.perf_counter()
    total = series * seconds
    while runner.step.samples + runner.step.late < total - series:  # the last second stays unread-safe
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - begin
    await stop(task)
    return (runner.step.samples + runner.step.late) / elapsed


async def delays(cfg: Config, series: int, rate: float, seconds: float) -> dict[str, float]:
    runner, task = await start_runner(cfg)
    await runner.started.wait()
    await asyncio.sleep(8)  # the shard consumer's first JoinGroup
    producer = AIOKafkaProducer(bootstrap_servers=cfg.kafka.bootstrap, linger_ms=2)
    await producer.start()
    consumer = AIOKafkaConsumer(cfg.kafka.topics.alerts, bootstrap_servers=cfg.kafka.bootstrap,
                                auto_offset_reset="earliest", group_id=None, fetch_max_wait_ms=20)
    await consumer.start()
    sent: dict[float, float] = {}  # event time of a trigger sample -> wall time it was sent
    wall: list[float] = []
    event: list[float] = []
    matched: set[float] = set()

    async def receive() -> None:
        while True:
            for recs in (await consumer.getmany(timeout_ms=100)).values():
                now = time.time()
                for rec in recs:
                    alert = decode(rec.value, AlertEvent)
                    if alert.state == "resolved":
                        continue
                    # the trigger sample this alert comes from: the newest one at or before its tick
                    cause = max((ts for ts in sent if ts <= alert.starts_at), default=None)
                    if cause is not None and cause not in matched:
                        matched.add(cause)
                        wall.append(now - sent[cause])
                        event.append(alert.event_time - cause)

    reader = asyncio.create_task(receive())
    period = series / rate  # one event-time second of samples every `period` wall seconds
    begin = time.time()
    end = begin + seconds
    was_on = False
    while time.time() < end:
        ts = float(int(time.time() * 1000)) / 1000
        phase = (ts - begin) % 4.0
        trigger = phase >= 2.0  # 2 s at 0, 2 s at 1: one alert (no `for`) per 4 s
        for key, value in batches(series, ts, trigger):
            await producer.send(cfg.kafka.topics.samples, value, key=key)
        if trigger and not was_on:
            sent[ts] = time.time()
        was_on = trigger
        await asyncio.sleep(max(0.0, period - (time.time() - ts)))
    await asyncio.sleep(10)
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    await consumer.stop()
    await producer.stop()
    await stop(task)
    wall.sort()
    return {"triggers": len(sent), "alerts": len(wall), "p50_s": statistics.median(wall) if wall else float("nan"),
            "p99_s": wall[min(len(wall) - 1, int(0.99 * len(wall)))] if wall else float("nan"),
            "event_time_part_p50_s": statistics.median(event) if event else float("nan")}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--rules", type=int, default=10)
    ap.add_argument("--backlog-seconds", type=int, default=120)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--lateness", type=float, default=1.0)
    ap.add_argument("--json", help="write the numbers here too")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        rules = tmp / "bench.rules.yml"
        rules.write_text(rules_yaml(args.rules))
        port = free_port()
        broker = start_broker("127.0.0.1", port, log_path=tmp / "tansu.log")
        try:
            bootstrap = f"127.0.0.1:{port}"
            rate = await max_rate(config(bootstrap, rules, tmp, args.lateness), args.series, args.backlog_seconds)
            print(f"max rate: {rate:,.0f} samples/s ({args.series} series, {args.rules} rules, 1 s interval)")
            result = await delays(config(bootstrap, rules, tmp, args.lateness), args.series, rate / 2, args.seconds)
            result = {"max_rate_samples_per_s": rate, "offered_rate_samples_per_s": rate / 2,
                      "series": args.series, "rules": args.rules, "allowed_lateness_s": args.lateness, **result}
            for key, value in result.items():
                print(f"{key:>28}: {value:,.3f}" if isinstance(value, float) else f"{key:>28}: {value}")
            if args.json:
                Path(args.json).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
        finally:
            broker.terminate()
            broker.wait(timeout=10)


if __name__ == "__main__":
    asyncio.run(main())
