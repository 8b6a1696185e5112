"""Delay from a sample's arrival on wk.samples to its alert on wk.alerts, at half the worker's max rate.

Real tansu broker, the real rules agent (`RulesRunner`, the code the worker runs, in this process).
1. Max rate: once the agent has started, a backlog of batches (`--series` series per batch, one batch
   per event-time second, spread over 8 source keys, one per samples partition) is put on the samples
   topic at once; the agent reads it as fast as it can while evaluating `--rules` rules each second of
   event time. Samples/s = max rate, timed from the first backlog message.
2. Delay: on fresh topics, batches are produced live at half that rate with event time = wall time;
   every 4 s a `trigger` gauge goes to 1 for 2 s (rule `trigger > 0`, no `for`). For each rise: wall time
   from sending its first 1 to the agent's `firing` alert on wk.alerts, and the event-time part (alert
   tick - sample time).
   Event time only moves when every source's samples are newer than allowed_lateness, so the delay is
   at least allowed_lateness + up to one rule interval, plus processing.

With `--processes N` the rules run in N real `watchkeeper worker` processes instead (the whole worker:
windows and anomaly agents too, as deployed), with `--evaluation partitioned` (default) or `full`. The max
rate is then measured from outside: the workers are started on empty topics and a warm-up (a trigger rise,
its alert awaited, then `--settle` seconds for the consumer groups) comes first; then the backlog is put
on the samples topic at once, with a trigger rise in its last seconds, and the rate is the samples up to
that rise over the wall time from the first backlog message to its `firing` alert. In the delay phase,
only rises sent `--settle` seconds after the first alert arrived are counted. The workers log every block
of their event loop of at least `--warn-loop-blocked` seconds with where it was (`plumbing.loop_lag`); the
bench counts those of the backlog and of the live phase (`loop_blocks`, `live_loop_blocks`).

Run: PYTHONPATH=. python bench/rules/alert_delay.py [--series 2000] [--rules 10] [--seconds 60]
     PYTHONPATH=. python bench/rules/alert_delay.py --processes 2 [--evaluation partitioned|full]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from watchkeeper.agents.rules_agent import RulesRunner, rule_topics
from watchkeeper.agents.rules_wiring import load_rules
from watchkeeper.commands.worker import rules_agent_settings
from watchkeeper.plumbing.broker import free_port, start_broker
from watchkeeper.plumbing.config import Config
from watchkeeper.plumbing.topics import ensure_topics, topic_plan
from watchkeeper.schemas import AlertEvent, SampleBatch, SeriesBlock, decode, encode
from watchkeeper.schemas.topics import DEFAULT_TOPICS

SOURCES = 8
BLOCK_LINE = re.compile(r"event loop blocked (?P<late>[0-9.]+) s \(.*; wall (?P<wall>[0-9.]+)\): (?P<where>.*)")


def source_names(n: int = SOURCES, partitions: int = DEFAULT_TOPICS["samples"].partitions) -> list[str]:
    """`n` source keys spread evenly over the samples partitions by Kafka's partitioner (`src-<i>`, the
    first names that land on each partition in turn): with `src-0..7` only 4 of 8 partitions got data,
    which the partitioned evaluation would not spread over processes."""
    part = DefaultPartitioner()
    every = list(range(partitions))
    names: list[str] = []
    i = 0
    while len(names) < n:
        want = len(names) % partitions
        while part(f"src-{i}".encode(), every, every) != want:
            i += 1
        names.append(f"src-{i}")
        i += 1
    return names


SOURCE_NAMES = source_names()


def rules_yaml(n_rules: int) -> str:
    rules: list[dict[str, str]] = [{"alert": "Trigger", "expr": "trigger > 0"}]
    for i in range(n_rules - 1):
        rules.append({"record": f"job:load:avg{i}", "expr": f"avg by (job) (avg_over_time(load[{1 + i % 5}m]))"})
    return yaml.safe_dump({"groups": [{"name": "bench", "interval": "1s", "rules": rules}]}, sort_keys=False)


def config(bootstrap: str, rules: Path, tmp: Path, lateness: float, evaluation: str = "full",
           shards: int = 1) -> Config:
    suffix = uuid.uuid4().hex[:8]
    cfg = Config(data_dir=str(tmp / suffix))
    cfg.kafka.bootstrap = bootstrap
    cfg.kafka.session_timeout = 6.0
    for key in ("samples", "aggregates", "alerts", "notifications", "deadletter"):
        setattr(cfg.kafka.topics, key, f"b{suffix}.{key}")
    cfg.worker.app_id = f"bench-{suffix}"
    cfg.windows.allowed_lateness = lateness
    cfg.rules.files = [str(rules)]
    cfg.rules.shards = shards
    cfg.rules.evaluation = evaluation  # type: ignore[assignment]
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
        name = SOURCE_NAMES[s]
        out.append((name.encode(), encode(SampleBatch(source=name, labels={"job": f"j{s % 4}"},
                                                            series=blocks))))
    return out


class Workers:
    """`watchkeeper worker` subprocesses on `cfg` (written as a watchkeeper.yaml), logs in `tmp`."""

    def __init__(self, cfg: Config, tmp: Path, n: int, loop_lag_warn: float = 1.0) -> None:
        self.loop_lag_warn = loop_lag_warn
        self.path = tmp / f"{cfg.worker.app_id}.yaml"
        self.path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        self.logs = [tmp / f"{cfg.worker.app_id}-worker-{i}.log" for i in range(n)]
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        for log in self.logs:
            with open(log, "wb") as out:
                self.procs.append(subprocess.Popen(
                    ["nice", "-n", "10", sys.executable, "-m", "watchkeeper", "worker", "--config", str(self.path),
                     "--loglevel", "info", "--warn-loop-blocked", str(self.loop_lag_warn)],
                    stdout=out, stderr=subprocess.STDOUT))

    def check(self) -> None:
        for proc, log in zip(self.procs, self.logs, strict=False):
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")

    def cpu_seconds(self) -> float:
        """User + system CPU of the workers so far (Linux /proc), to report what they used."""
        total = 0.0
        tick = float(os.sysconf("SC_CLK_TCK"))
        for proc in self.procs:
            try:
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def loop_blocks(self, begin: float, end: float) -> list[tuple[int, float, str]]:
        """(worker, seconds, where) of each event-loop block the workers logged between the wall times
        `begin` and `end` (`plumbing.loop_lag`: the lines carry the wall time of the late wake)."""
        found = []
        for i, log in enumerate(self.logs):
            for line in log.read_text(errors="replace").splitlines():
                got = BLOCK_LINE.search(line)
                if got and begin <= float(got["wall"]) <= end:
                    found.append((i, float(got["late"]), got["where"]))
        return found

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class AlertWatch:
    """Every alert on wk.alerts, with the wall time it arrived. Its partitions are assigned and read from
    their beginning (no subscription: once, a subscribed reader never saw an alert tansu had stored)."""

    def __init__(self, cfg: Config) -> None:
        self.topic = cfg.kafka.topics.alerts
        self.consumer = AIOKafkaConsumer(bootstrap_servers=cfg.kafka.bootstrap, enable_auto_commit=False,
                                         auto_offset_reset="earliest", group_id=None, fetch_max_wait_ms=20)
        self.seen: list[tuple[float, AlertEvent]] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        tps = [TopicPartition(self.topic, p) for p in range(DEFAULT_TOPICS["alerts"].partitions)]
        self.consumer.assign(tps)
        await self.consumer.seek_to_beginning(*tps)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            for recs in (await self.consumer.getmany(timeout_ms=100)).values():
                now = time.time()
                self.seen.extend((now, decode(rec.value, AlertEvent)) for rec in recs)

    async def firing_at_or_after(self, ts: float, timeout: float, workers: Workers | None = None) -> float:
        """Wall time a `firing` alert of a tick at or after `ts` arrived (waits for it)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for now, alert in self.seen:
                if alert.state == "firing" and alert.event_time >= ts:
                    return now
            if workers is not None:
                workers.check()
            await asyncio.sleep(0.05)
        raise TimeoutError(f"no firing alert at or after {ts} within {timeout:.0f} s")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()


async def create_topics(cfg: Config) -> None:
    shards, state, _ = rule_topics(cfg.worker.app_id)
    n = cfg.rules.shards
    await ensure_topics(cfg.kafka.bootstrap, {**topic_plan(cfg.kafka.topics), shards: n, state: n})


async def start_runner(cfg: Config) -> tuple[RulesRunner, asyncio.Task[None]]:
    await create_topics(cfg)
    settings = rules_agent_settings(cfg)
    loaded = load_rules(settings)
    assert loaded is not None
    runner = RulesRunner(settings, loaded.step_factory)
    task = asyncio.create_task(runner.run())
    return runner, task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def max_rate(cfg: Config, series: int, seconds: int) -> float:
    """The rules agent started first, on empty topics; then the backlog is put on the topic at once and
    timed from its first message until the agent has read it (the last second excepted). Put on the topic
    before the agent starts, the reader would fetch it while the shard consumer joins its group, before
    `started`, and the time would miss most of the reading."""
    await create_topics(cfg)
    runner, task = await start_runner(cfg)
    await runner.started.wait()
    producer = AIOKafkaProducer(bootstrap_servers=cfg.kafka.bootstrap, linger_ms=20,
                                max_request_size=4 * 1024 * 1024)
    await producer.start()
    t0 = float(int(time.time()) - 3600)
    backlog = [kv for k in range(seconds) for kv in batches(series, t0 + k, trigger=False)]
    begin = time.perf_counter()
    for key, value in backlog:
        await producer.send(cfg.kafka.topics.samples, value, key=key)
    await producer.flush()
    await producer.stop()
    total = series * seconds
    while runner.step.samples + runner.step.late < total - series:  # the last second stays unread-safe
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - begin
    await stop(task)
    return (runner.step.samples + runner.step.late) / elapsed


async def max_rate_workers(cfg: Config, series: int, seconds: int, processes: int, tmp: Path,
                           settle: float, loop_lag_warn: float = 1.0) -> dict[str, Any]:
    """Max rate through `processes` worker processes (see the module docstring): samples/s, the workers'
    CPU seconds per event-time second of the backlog, and their event-loop blocks while catching it up."""
    await create_topics(cfg)
    workers = Workers(cfg, tmp, processes, loop_lag_warn)
    workers.start()
    watch = AlertWatch(cfg)
    await watch.start()
    producer = AIOKafkaProducer(bootstrap_servers=cfg.kafka.bootstrap, linger_ms=20,
                                max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        t0 = float(int(time.time()) - 3600)
        warm = [(k, t0 - 20 + k) for k in range(10)]  # trigger on at t0-16, t0-15
        for k, ts in warm:
            for key, value in batches(series, ts, trigger=k in (4, 5)):
                await producer.send(cfg.kafka.topics.samples, value, key=key)
        await producer.flush()
        await watch.firing_at_or_after(t0 - 16, 300, workers)
        await asyncio.sleep(settle)
        rise = seconds - 4  # trigger on at t0+rise, t0+rise+1: its alert needs every sample up to t0+rise+1
        backlog = [kv for k in range(seconds) for kv in batches(series, t0 + k, trigger=k in (rise, rise + 1))]
        cpu0 = workers.cpu_seconds()
        begin = time.time()
        for key, value in backlog:
            await producer.send(cfg.kafka.topics.samples, value, key=key)
        await producer.flush()
        end = await watch.firing_at_or_after(t0 + rise, 600, workers)
        cpu = workers.cpu_seconds() - cpu0
    finally:
        await producer.stop()
        await watch.stop()
        workers.stop()
    read = (series + 1) * (rise + 2)
    return {"rate": read / (end - begin), "workers_cpu_per_event_second": cpu / (rise + 2),
            "workers_cpu_share": cpu / (end - begin), **block_report(workers.loop_blocks(begin, end + 1))}


def block_report(blocks: list[tuple[int, float, str]], places: int = 3) -> dict[str, Any]:
    """The longest event-loop block, how many there were, and where the longest few were."""
    longest = sorted(blocks, key=lambda b: -b[1])
    return {"loop_blocks": len(blocks), "loop_block_max_s": longest[0][1] if longest else 0.0,
            "loop_blocks_by_worker": dict(Counter(str(i) for i, _, _ in blocks)),
            "loop_block_places": [f"worker {i}, {late:.2f} s: {where}" for i, late, where in longest[:places]]}


async def delays(cfg: Config, series: int, rate: float, seconds: float, processes: int = 0,
                 tmp: Path | None = None, settle: float = 0.0, loop_lag_warn: float = 1.0) -> dict[str, Any]:
    workers: Workers | None = None
    if processes:
        assert tmp is not None
        await create_topics(cfg)
        workers = Workers(cfg, tmp, processes, loop_lag_warn)
        workers.start()
        task = None
    else:
        runner, task = await start_runner(cfg)
        await runner.started.wait()
        await asyncio.sleep(8)  # the shard consumer's first JoinGroup
    producer = AIOKafkaProducer(bootstrap_servers=cfg.kafka.bootstrap, linger_ms=2)
    await producer.start()
    consumer = AIOKafkaConsumer(bootstrap_servers=cfg.kafka.bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", group_id=None, fetch_max_wait_ms=20)
    await consumer.start()
    tps = [TopicPartition(cfg.kafka.topics.alerts, p) for p in range(DEFAULT_TOPICS["alerts"].partitions)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    sent: dict[float, float] = {}  # event time of a trigger sample -> wall time it was sent
    wall: list[float] = []
    event: list[float] = []
    matched: set[float] = set()
    # With worker processes: rises count once the first alert came and `settle` seconds more passed.
    counted_from = [math.inf if workers is not None else -math.inf]

    async def receive() -> None:
        while True:
            for recs in (await consumer.getmany(timeout_ms=100)).values():
                now = time.time()
                for rec in recs:
                    alert = decode(rec.value, AlertEvent)
                    if counted_from[0] == math.inf:
                        counted_from[0] = now + settle
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
    begin = float(int(time.time() * 1000)) / 1000  # as `ts` below: the first 2 s have the trigger at 0
    end = begin + seconds
    was_on = False
    while time.time() < end or (workers is not None and time.time() < counted_from[0] + seconds):
        if workers is not None:
            workers.check()
            if time.time() > end + 300:
                raise TimeoutError("no alert from the workers within 300 s")
        ts = float(int(time.time() * 1000)) / 1000
        phase = (ts - begin) % 4.0
        trigger = phase >= 2.0  # 2 s at 0, 2 s at 1: one alert (no `for`) per 4 s
        for key, value in batches(series, ts, trigger):
            await producer.send(cfg.kafka.topics.samples, value, key=key)
        if trigger and not was_on and time.time() >= counted_from[0]:
            sent[ts] = time.time()
        was_on = trigger
        await asyncio.sleep(max(0.0, period - (time.time() - ts)))
    stopped = time.time()
    await asyncio.sleep(10)
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    await consumer.stop()
    await producer.stop()
    if task is not None:
        await stop(task)
    live: dict[str, Any] = {}
    if workers is not None:
        workers.stop()
        live = {f"live_{k}": v for k, v in block_report(workers.loop_blocks(begin, stopped)).items()}
    # A rise in the last seconds before the samples stop cannot alert: its tick needs newer samples of
    # every source to pass the watermark (or the idle timeout). Those are not counted.
    cut = [ts for ts, at in sent.items() if at > stopped - 3 and ts not in matched]
    for ts in cut:
        del sent[ts]
    missing = sorted(round(at - begin, 1) for ts, at in sent.items() if ts not in matched)
    wall.sort()
    return {"triggers": len(sent), "alerts": len(wall), "rises_without_alert_s": missing,
            "p50_s": statistics.median(wall) if wall else float("nan"),
            "p99_s": wall[min(len(wall) - 1, int(0.99 * len(wall)))] if wall else float("nan"),
            "event_time_part_p50_s": statistics.median(event) if event else float("nan"), **live}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--rules", type=int, default=10)
    ap.add_argument("--backlog-seconds", type=int, default=120)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--lateness", type=float, default=1.0)
    ap.add_argument("--processes", type=int, default=0,
                    help="run the rules in this many `watchkeeper worker` processes (0: the rules agent in this one)")
    ap.add_argument("--evaluation", choices=("partitioned", "full"), default="partitioned",
                    help="rules.evaluation of the worker processes")
    ap.add_argument("--shards", type=int, default=8, help="rules.shards of the worker processes")
    ap.add_argument("--settle", type=float, default=15.0,
                    help="seconds after the workers' first alert before measuring (consumer groups settle)")
    ap.add_argument("--logs", help="keep the worker processes' logs and configs in this directory")
    ap.add_argument("--warn-loop-blocked", type=float, default=1.0,
                    help="the workers log (and this bench counts) event-loop blocks at least this long")
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
            extra: dict[str, Any] = {}
            if args.processes:
                def cfg() -> Config:
                    return config(bootstrap, rules, tmp, args.lateness, args.evaluation, args.shards)

                logs = Path(args.logs) if args.logs else tmp
                logs.mkdir(parents=True, exist_ok=True)
                got = await max_rate_workers(cfg(), args.series, args.backlog_seconds, args.processes, logs,
                                             args.settle, args.warn_loop_blocked)
                rate = got.pop("rate")
                extra = {"processes": args.processes, "evaluation": args.evaluation, "shards": args.shards, **got}
                print(f"max rate: {rate:,.0f} samples/s ({args.processes} worker processes, {args.evaluation})")
                result = await delays(cfg(), args.series, rate / 2, args.seconds, args.processes, logs, args.settle,
                                      args.warn_loop_blocked)
            else:
                rate = await max_rate(config(bootstrap, rules, tmp, args.lateness), args.series,
                                      args.backlog_seconds)
                print(f"max rate: {rate:,.0f} samples/s ({args.series} series, {args.rules} rules, 1 s interval)")
                result = await delays(config(bootstrap, rules, tmp, args.lateness), args.series, rate / 2,
                                      args.seconds)
            result = {"max_rate_samples_per_s": rate, "offered_rate_samples_per_s": rate / 2,
                      "series": args.series, "rules": args.rules, "allowed_lateness_s": args.lateness, **extra,
                      **result, "load_average": os.getloadavg()[0]}
            for key, value in result.items():
                print(f"{key:>28}: {value:,.3f}" if isinstance(value, float) else f"{key:>28}: {value}")
            if args.json:
                Path(args.json).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
        finally:
            broker.terminate()
            broker.wait(timeout=10)


if __name__ == "__main__":
    asyncio.run(main())
