"""Partitioned rule evaluation (`rules.evaluation: partitioned`) through real worker processes on a real
broker: the same samples (counter resets, a series going stale, `absent`, `for`, `keep_firing_for`, a
recording rule feeding an alerting rule, aggregations over sources spread on the samples partitions)
give the same `wk.alerts` transitions and the same recorded samples with 1, 2 and 4 worker processes,
and the same as the full mode's single store."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from tests.integration.kafka_io import consume_until, produce
from tests.integration.test_rules_agent import Workers, alerts, canonical, rules_config
from watchkeeper.plumbing.config import Config
from watchkeeper.schemas import SampleBatch, SeriesBlock, decode, encode

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
    cfg.rules.shards = 4
    return cfg


def recorded(cfg: Config, count: int, timeout: float) -> list[tuple[str, str, str, float, float]]:
    def mine(recs: list[Any]) -> list[Any]:
        return [r for r in recs if r.key and r.key.startswith(b"rules/")]

    recs = asyncio.run(consume_until(cfg.kafka.bootstrap, cfg.kafka.topics.samples,
                                     lambda r: len(mine(r)) >= count, timeout=timeout))
    return sorted((r.key.decode(), b.name, str(sorted(b.labels.items())), b.ts[0] - T0, b.values[0])
                  for r in mine(recs) for b in decode(r.value, SampleBatch).series)


def run_mode(cfg: Config, tmp_path: Path, processes: int, want_alerts: int | None,
             want_recorded: int | None) -> tuple[list[str], list[tuple[str, str, str, float, float]], str]:
    workers = Workers(cfg, tmp_path)
    try:
        for _ in range(processes):
            workers.start()
        time.sleep(5)  # let the processes meet in the shard group: shards move while the stream runs
        asyncio.run(produce(cfg.kafka.bootstrap, cfg.kafka.topics.samples, messages(0, END + STEP)))
        if want_alerts is None:  # the reference: wait for the stream's last alert, then for quiet
            got = alerts(cfg, 10_000, timeout=60)
        else:
            alerts(cfg, want_alerts, timeout=180)
            time.sleep(5)
            got = alerts(cfg, want_alerts + 1, timeout=5)
        rec = recorded(cfg, want_recorded if want_recorded is not None else 10_000,
                       timeout=60 if want_recorded is None else 120)
        return canonical(got), rec, workers.logs()
    finally:
        workers.close()


def test_one_two_and_four_workers_give_the_full_modes_alerts_and_recordings(wk_config: Config,
                                                                           tmp_path: Path) -> None:
    full = mode_config(wk_config, tmp_path / "full", "full")
    want, want_rec, logs = run_mode(full, tmp_path / "full", 1, None, None)
    rules = set(want)
    assert any('"TemperatureMissing"' in a for a in rules) and any('"RequestRateHigh"' in a for a in rules), logs
    assert any('"HotDatacenter"' in a for a in rules) and any('"resolved"' in a for a in rules), logs
    assert len(want_rec) > 60, logs
    for processes in (1, 2, 4):
        cfg = mode_config(wk_config, tmp_path / f"p{processes}", "partitioned")
        got, got_rec, logs = run_mode(cfg, tmp_path / f"p{processes}", processes, len(want), len(want_rec))
        assert got == want, f"{processes} processes\n{logs}"
        assert got_rec == want_rec, f"{processes} processes\n{logs}"
