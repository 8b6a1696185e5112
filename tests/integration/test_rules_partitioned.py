"""Partitioned rule evaluation (`rules.evaluation: partitioned`) through real worker processes on a real
broker: the same samples (counter resets, a series going stale, `absent`, `for`, `keep_firing_for`, a
recording rule feeding an alerting rule, aggregations over sources spread on the samples partitions)
give the same `wk.alerts` transitions and the same recorded samples with 1, 2 and 4 worker processes,
and the same as the full mode's single store."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.kafka_io import consume_until, produce
from tests.integration.test_rules_agent import Workers, canonical, rules_config
from watchkeeper.plumbing.config import Config
from watchkeeper.schemas import AlertEvent, SampleBatch, SeriesBlock, decode, encode

T0 = float(int(time.time()) // 60 * 60 - 7200)
STEP = 10.0
END = 960.0

RULES = """
groups:
  - name: request-rates
    interval: 30s
    rules:
      - record: job:requests:rate1m
        expr: sum by (job) (rate(requests_total[1m]))
  - name: request-alerts
    interval: 30s
    rules:
      - alert: RequestRateHigh
        expr: job:requests:rate1m > 5
        for: 1m
  - name: hosts
    interval: 30s
    rules:
      - alert: HighTemperature
        expr: temperature > 50
        for: 1m
        keep_firing_for: 1m
        annotations: {summary: "{{ $labels.host }} at {{ $value }}"}
      - alert: TemperatureMissing
        expr: absent(temperature{host="d"})
      - alert: HotDatacenter
        expr: max by (dc) (temperature) > 55
      - record: dc:temperature:avg
        expr: avg by (dc) (temperature)
"""
HOSTS = {"a": "x", "b": "x", "c": "y", "d": "y", "e": "z", "f": "z"}
INSTANCES = ("1", "2", "3", "4")


def temperature(t: float, host: str) -> float:
    if host == "a" and 180 <= t < 480:
        return 60.0
    if host == "e" and 300 <= t < 420:
        return 58.0
    return 20.0


def requests(t: float, instance: str) -> float:
    """1/s, then 4/s per instance in [300, 600); instance 3's counter restarts from 0 at 450."""
    total = min(t, 300) + 4 * max(0.0, min(t, 600) - 300) + max(0.0, t - 600)
    if instance == "3" and t >= 450:
        total -= min(450, 300) + 4 * (450 - 300)
    return total


def messages(start: float, end: float) -> list[tuple[bytes, bytes]]:
    out = []
    t = start
    while t < end:
        ts = [T0 + t]
        for host, dc in HOSTS.items():
            if host == "d" and t >= 400:  # d keeps sending, but no temperature: that series goes stale
                block = SeriesBlock(name="uptime", ts=ts, values=[t])
            else:
                block = SeriesBlock(name="temperature", ts=ts, values=[temperature(t, host)])
            out.append((f"host-{host}".encode(), encode(SampleBatch(source=f"host-{host}",
                                                                    labels={"host": host, "dc": dc},
                                                                    series=[block]))))
        for instance in INSTANCES:
            block = SeriesBlock(name="requests_total", kind="counter", ts=ts, values=[requests(t, instance)])
            out.append((f"api-{instance}".encode(), encode(SampleBatch(
                source=f"api-{instance}", labels={"job": "api", "instance": instance}, series=[block]))))
        t += STEP
    return out


def mode_config(base: Config, tmp_path: Path, evaluation: str) -> Config:
    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = rules_config(base, tmp_path)
    (tmp_path / "rules.yml").write_text(RULES)
    cfg.rules.evaluation = evaluation  # type: ignore[assignment]
    # Four shards (the workers make the topics), so that the two units land on different shards and so
    # in different processes: with two shards both hash to the same one.
    cfg.worker.app_id += "-s4"
    cfg.rules.shards = 4
    return cfg


def recorded(cfg: Config, count: int | None) -> list[tuple[str, str, str, float, float]]:
    """The recorded samples on the samples topic: `count` of them, or (None) all once no more come."""
    def samples(recs: list[Any]) -> list[tuple[str, str, str, float, float]]:
        return sorted((r.key.decode(), b.name, str(sorted(b.labels.items())), b.ts[0] - T0, b.values[0])
                      for r in recs if r.key and r.key.startswith(b"rules/")
                      for b in decode(r.value, SampleBatch).series)

    return samples(settled(cfg.kafka.bootstrap, cfg.kafka.topics.samples, lambda r: len(samples(r)), count))


def settled(bootstrap: str, topic: str, size: Any, count: int | None, timeout: float = 180.0) -> list[Any]:
    """The topic's records once `size(records)` reached `count` and stayed there 5 s (None: stopped growing
    over two reads 5 s apart, after something came)."""
    deadline = time.monotonic() + timeout
    last = -1
    while True:
        recs = asyncio.run(consume_until(bootstrap, topic, lambda r: False, timeout=2.0))
        n = size(recs)
        if time.monotonic() > deadline or (n == last and n > 0 and (count is None or n >= count)):
            return recs
        last = n
        time.sleep(5)


def run_mode(cfg: Config, tmp_path: Path, processes: int, want_alerts: int | None, want_recorded: int | None,
             kill_at: float | None = None) -> tuple[list[str], list[tuple[str, str, str, float, float]], str]:
    """Run `processes` workers over the input; `kill_at`: SIGKILL the first one once the input up to this
    event time is in and some alerts are out (the others take its partitions and shards over)."""
    workers = Workers(cfg, tmp_path)
    try:
        procs = [workers.start() for _ in range(processes)]
        time.sleep(5)  # let the processes meet in the shard group: shards move while the stream runs
        bootstrap = cfg.kafka.bootstrap
        if kill_at is not None:
            asyncio.run(produce(bootstrap, cfg.kafka.topics.samples, messages(0, kill_at)))
            settled(bootstrap, cfg.kafka.topics.alerts, len, 1)
            victim = unit_owner(workers, procs)  # a merge stage with units (and its samples partitions)
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=30)
        asyncio.run(produce(bootstrap, cfg.kafka.topics.samples, messages(kill_at or 0, END + STEP)))
        recs = settled(bootstrap, cfg.kafka.topics.alerts, len, want_alerts)
        got = [decode(r.value, AlertEvent) for r in recs]
        rec = recorded(cfg, want_recorded)
        return canonical(got), rec, workers.logs()
    finally:
        workers.close()


def unit_owner(workers: Workers, procs: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """The process whose merge stage owns rule units now (the newest "owns shards" line of each log)."""
    owning = set()
    for path in workers.tmp_path.glob(f"{workers.name}-worker-*.log"):
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if "rules merge: " in ln and " owns " in ln]
        if lines and "(units [])" not in lines[-1]:
            owning.add(int(lines[-1].split("rules merge: ")[1].split(" ")[0].rsplit(":", 1)[1]))
    return next((p for p in procs if p.pid in owning), procs[0])


_REFERENCE: dict[str, tuple[list[str], list[tuple[str, str, str, float, float]]]] = {}


def reference(wk_config: Config, tmp_path: Path) -> tuple[list[str], list[tuple[str, str, str, float, float]]]:
    """The full mode's alerts and recorded samples from one process (once per broker)."""
    if wk_config.kafka.bootstrap not in _REFERENCE:
        full = mode_config(wk_config, tmp_path / "full", "full")
        want, want_rec, logs = run_mode(full, tmp_path / "full", 1, None, None)
        rules = set(want)
        assert any('"TemperatureMissing"' in a for a in rules) and any('"RequestRateHigh"' in a for a in rules), logs
        assert any('"HotDatacenter"' in a for a in rules) and any('"resolved"' in a for a in rules), logs
        assert len(want_rec) > 60, logs
        _REFERENCE[wk_config.kafka.bootstrap] = want, want_rec
    return _REFERENCE[wk_config.kafka.bootstrap]


@pytest.mark.parametrize(("processes", "kill_at"), [pytest.param(1, None, id="1"), pytest.param(2, None, id="2"),
                                                    pytest.param(4, None, id="4"),
                                                    pytest.param(2, 400.0, id="2-one-killed")])
def test_partitioned_workers_give_the_full_modes_alerts_and_recordings(wk_config: Config, tmp_path: Path,
                                                                      processes: int, kill_at: float | None) -> None:
    """And with one of two processes killed (SIGKILL) mid-stream: nothing lost, nothing doubled."""
    want, want_rec = reference(wk_config, tmp_path)
    cfg = mode_config(wk_config, tmp_path / "partitioned", "partitioned")
    started = time.monotonic()
    got, got_rec, logs = run_mode(cfg, tmp_path / "partitioned", processes, len(want), len(want_rec), kill_at)
    print(f"{processes} processes (kill at {kill_at}): {time.monotonic() - started:.1f} s")
    assert got == want, logs
    assert got_rec == want_rec, logs
