"""Given samples on wk.samples (a gauge and a counter over 15 event-time minutes, replayed as fast as the
broker takes them), expect the alert transitions on wk.alerts at their event times, a recorded series
back on wk.samples, the alerts in ClickHouse; the same alerts from two worker processes as from one;
and the same alerts, none twice, across a worker restart (stopped, or killed with SIGKILL)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest

from tests.conftest import write_config
from tests.integration.kafka_io import consume_until, produce
from watchkeeper.agents.rules_agent import rule_topics
from watchkeeper.agents.rules_step import Checkpoint
from watchkeeper.plumbing.config import Config
from watchkeeper.plumbing.topics import ensure_topics, topic_plan
from watchkeeper.schemas import AlertEvent, SampleBatch, SeriesBlock, decode, encode

T0 = float(int(time.time()) // 60 * 60 - 7200)  # recent (ClickHouse TTLs), on a 30 s tick
STEP = 10.0
END = 900.0

RULES = """
groups:
  - name: temperature          # its own unit (shard 0 of 2)
    interval: 30s
    rules:
      - alert: HighTemperature
        expr: temperature > 50
        for: 1m
        labels: {severity: page}
        annotations: {summary: "{{ $labels.host }} is at {{ $value }} degrees"}
  - name: request-rates        # with request-alerts, which reads what it records: one unit (shard 1 of 2)
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
        labels: {severity: ticket}
"""

# (rule, distinguishing label, state, event time - T0): temperature 60 on host a in [180, 480); requests
# 1/s, 10/s in [300, 600), then 1/s again. The rate over the left-open (t-1m, t] (Prometheus 3, the
# default) reads the six points t-50s..t, extrapolated to 60 s: 6.4 at tick 330 (increase 320 in 50 s), 10
# up to 600, 4.6 at 630 (230 in 50 s), so the alert resolves at 630 (at 660 in prometheus2, whose closed
# range still holds 5.5 at 630).
EXPECTED = [
    ("HighTemperature", "a", "pending", 180), ("HighTemperature", "a", "firing", 240),
    ("HighTemperature", "a", "resolved", 480),
    ("RequestRateHigh", "api", "pending", 330), ("RequestRateHigh", "api", "firing", 390),
    ("RequestRateHigh", "api", "resolved", 630),
]


def temperature(t: float, host: str) -> float:
    return 60.0 if host == "a" and 180 <= t < 480 else 20.0


def requests(t: float) -> float:
    return min(t, 300) + 10 * max(0.0, min(t, 600) - 300) + max(0.0, t - 600)


def messages(start: float, end: float) -> list[tuple[bytes, bytes]]:
    """Samples with start <= t - T0 < end, one message per source per 10 event-time seconds."""
    out = []
    t = start
    while t < end:
        ts = [T0 + t]
        for host in ("a", "b"):
            block = SeriesBlock(name="temperature", ts=ts, values=[temperature(t, host)])
            out.append((f"host-{host}".encode(), encode(SampleBatch(source=f"host-{host}", labels={"host": host},
                                                                    series=[block]))))
        for instance in ("1", "2"):
            block = SeriesBlock(name="requests_total", kind="counter", ts=ts, values=[requests(t) / 2])
            out.append((f"api-{instance}".encode(), encode(SampleBatch(
                source=f"api-{instance}", labels={"job": "api", "instance": instance}, series=[block]))))
        t += STEP
    return out


def rules_config(base: Config, tmp_path: Path) -> Config:
    """A copy of `base` with topics of its own (so each run starts from empty topics) and the rules."""
    cfg = base.model_copy(deep=True)
    suffix = uuid.uuid4().hex[:8]
    for key in ("samples", "aggregates", "alerts", "notifications", "deadletter"):
        setattr(cfg.kafka.topics, key, f"r{suffix}.{key}")
    cfg.worker.app_id = f"wk-rules-{suffix}"
    cfg.data_dir = str(tmp_path / f"data-{suffix}")
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    cfg.rules.files = [str(rules)]
    cfg.rules.shards = 2
    cfg.rules.checkpoint_seconds = 0.5
    shards_topic, state_topic, _ = rule_topics(cfg.worker.app_id)
    # Created here too: the test reads the checkpoint topic, and tansu would auto-create it on a read.
    plan = {**topic_plan(cfg.kafka.topics), shards_topic: cfg.rules.shards, state_topic: cfg.rules.shards}
    asyncio.run(ensure_topics(cfg.kafka.bootstrap, plan))
    return cfg


class Workers:
    """Worker subprocesses (`python -m watchkeeper worker`), stopped at the end of the test."""

    def __init__(self, cfg: Config, tmp_path: Path) -> None:
        self.name = cfg.worker.app_id
        self.path = write_config(cfg, tmp_path / f"{self.name}.yaml")
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = open(self.tmp_path / f"{self.name}-worker-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "watchkeeper", "worker", "--config", str(self.path),
                                 "--loglevel", "info"], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def logs(self) -> str:
        paths = sorted(self.tmp_path.glob(f"{self.name}-worker-*.log"))
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in paths)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                self.stop(proc)


@pytest.fixture
def workers_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[Workers] = []

    def make(cfg: Config) -> Workers:
        made.append(Workers(cfg, tmp_path))
        return made[-1]

    yield make
    for w in made:
        w.close()


def alerts(cfg: Config, count: int, timeout: float = 120.0) -> list[AlertEvent]:
    recs = asyncio.run(consume_until(cfg.kafka.bootstrap, cfg.kafka.topics.alerts, lambda r: len(r) >= count,
                                     timeout=timeout))
    for rec in recs:
        assert rec.key == decode(rec.value, AlertEvent).fingerprint.encode()
    return [decode(r.value, AlertEvent) for r in recs]


def summary(events: list[AlertEvent]) -> list[tuple[str, str, str, float]]:
    return sorted((e.rule, e.labels.get("host") or e.labels.get("job", ""), e.state, e.event_time - T0)
                  for e in events)


def canonical(events: list[AlertEvent]) -> list[str]:
    return sorted(e.model_dump_json() for e in events)


def test_samples_in_alerts_out_at_their_event_times(wk_config: Config, tmp_path: Path, workers_factory: Any,
                                                    ch_dsn: str) -> None:
    cfg = rules_config(wk_config, tmp_path)
    t = cfg.kafka.topics
    asyncio.run(produce(cfg.kafka.bootstrap, t.samples, messages(0, END + STEP)))
    workers = workers_factory(cfg)
    workers.start()

    events = alerts(cfg, len(EXPECTED))
    assert summary(events) == sorted(EXPECTED), workers.logs()
    temp = [e for e in events if e.rule == "HighTemperature"]
    assert temp[0].labels == {"alertname": "HighTemperature", "host": "a", "severity": "page"}
    assert temp[0].annotations == {"summary": "a is at 60 degrees"}
    assert temp[0].starts_at == T0 + 180 and temp[-1].ends_at == T0 + 480
    rate = [e for e in events if e.rule == "RequestRateHigh"]
    assert rate[0].value == pytest.approx(6.4) and rate[0].labels["job"] == "api"  # tick 330, see EXPECTED

    # The recorded series is back on wk.samples, keyed by its group, and nothing re-triggered from it.
    def recorded(recs: list[Any]) -> list[SampleBatch]:
        return [decode(r.value, SampleBatch) for r in recs if r.key == b"rules/request-rates"]

    recs = asyncio.run(consume_until(cfg.kafka.bootstrap, t.samples, lambda r: len(recorded(r)) >= 5, timeout=60))
    blocks = [block for b in recorded(recs) for block in b.series]
    assert all(block.name == "job:requests:rate1m" and block.labels == {"job": "api"} for block in blocks)
    points = {block.ts[0] - T0: block.values[0] for block in blocks}
    assert points[330.0] == pytest.approx(6.4) and points[300.0] == pytest.approx(1.0)
    time.sleep(3)
    assert len(alerts(cfg, len(EXPECTED) + 1, timeout=3)) == len(EXPECTED)  # no more, no repeats

    # The ClickHouse sink stores every transition in the alerts table.
    sink_cfg = cfg.model_copy(deep=True)
    sink_cfg.clickhouse.dsn = ch_dsn
    sink_cfg.clickhouse.flush_seconds = 0.5
    client = clickhouse_connect.get_client(dsn=ch_dsn)
    assert asyncio.run(_run_sink_until(sink_cfg, client, len(EXPECTED))) == len(EXPECTED)
    rows = client.query("SELECT rule, state, toFloat64(event_time) FROM alerts FINAL ORDER BY rule, event_time")
    assert sorted((r, s, e - T0) for r, s, e in rows.result_rows) == sorted(
        (rule, state, float(at)) for rule, _, state, at in EXPECTED)


def test_two_worker_processes_give_the_same_alerts_as_one(wk_config: Config, tmp_path: Path,
                                                          workers_factory: Any) -> None:
    """The full mode's shards (test_rules_partitioned.py has the partitioned mode's 1, 2 and 4 processes)."""
    wk_config = wk_config.model_copy(deep=True)
    wk_config.rules.evaluation = "full"
    one = rules_config(wk_config, tmp_path)
    asyncio.run(produce(one.kafka.bootstrap, one.kafka.topics.samples, messages(0, END + STEP)))
    single = workers_factory(one)
    single.start()
    want = alerts(one, len(EXPECTED))
    assert summary(want) == sorted(EXPECTED), single.logs()

    two = rules_config(wk_config, tmp_path)
    asyncio.run(produce(two.kafka.bootstrap, two.kafka.topics.samples, messages(0, 300)))
    pair = workers_factory(two)
    pids = {pair.start().pid, pair.start().pid}
    owners = wait_for_owners(two, pids)
    assert owners == pids, pair.logs()  # each process evaluates one of the two units
    asyncio.run(produce(two.kafka.bootstrap, two.kafka.topics.samples, messages(300, END + STEP)))
    got = alerts(two, len(EXPECTED))
    time.sleep(2)
    got = alerts(two, len(EXPECTED))
    assert canonical(got) == canonical(want), pair.logs()


@pytest.mark.parametrize("evaluation", ["full", "partitioned"])
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_a_restarted_worker_neither_loses_nor_repeats_transitions(wk_config: Config, tmp_path: Path,
                                                                  workers_factory: Any, how: int,
                                                                  evaluation: str) -> None:
    """In either mode (partitioned: the partial and the merge stage both restart)."""
    cfg = rules_config(wk_config, tmp_path)
    cfg.rules.evaluation = evaluation  # type: ignore[assignment]
    t = cfg.kafka.topics
    asyncio.run(produce(cfg.kafka.bootstrap, t.samples, messages(0, 420)))
    workers = workers_factory(cfg)
    first = workers.start()
    alerts(cfg, 4)  # both alerts pending, then firing (watermark 415: ticks up to 390)
    time.sleep(1)
    first.send_signal(how)
    first.wait(timeout=30)
    before = alerts(cfg, 5, timeout=3)
    assert summary(before) == sorted(e for e in EXPECTED if e[3] <= 390), workers.logs()
    asyncio.run(produce(cfg.kafka.bootstrap, t.samples, messages(420, END + STEP)))
    workers.start()
    alerts(cfg, len(EXPECTED))
    time.sleep(3)
    events = alerts(cfg, len(EXPECTED) + 1, timeout=3)
    assert summary(events) == sorted(EXPECTED), workers.logs()


def wait_for_owners(cfg: Config, pids: set[int], timeout: float = 90.0) -> set[int]:
    """The pids owning the newest checkpoint of each shard, once they are all different (or the timeout)."""
    _, state_topic, _ = rule_topics(cfg.worker.app_id)
    deadline = time.monotonic() + timeout
    owners: set[int] = set()
    while time.monotonic() < deadline:
        recs = asyncio.run(consume_until(cfg.kafka.bootstrap, state_topic, lambda r: False, timeout=1.0))
        newest: dict[int, int] = {}
        for rec in recs:
            cp = Checkpoint.decode(rec.value)
            if cp.units:
                newest[cp.shard] = int(cp.owner.rsplit(":", 1)[1])
        owners = set(newest.values())
        if len(newest) == cfg.rules.shards and owners == pids:
            return owners
        time.sleep(1.0)
    return owners


async def _run_sink_until(cfg: Config, client: Any, rows: int) -> int:
    from watchkeeper.commands.sink import run_clickhouse_sink

    stop = asyncio.Event()
    task = asyncio.create_task(run_clickhouse_sink(cfg, stop))
    deadline = time.monotonic() + 60
    count = 0
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        try:
            count = client.query("SELECT count() FROM alerts FINAL").result_rows[0][0]
        except Exception:
            continue
        if count >= rows:
            break
    stop.set()
    await task
    return count


def test_a_bad_rule_file_stops_the_worker_with_exit_code_2(wk_config: Config, tmp_path: Path) -> None:
    rules = tmp_path / "bad.rules.yml"
    rules.write_text("groups:\n  - name: broken\n    rules:\n      - alert: Nope\n        expr: nosuchfunc(up)\n")
    cfg = wk_config.model_copy(deep=True)
    cfg.rules.files = ["bad.rules.yml"]  # relative to the configuration file
    path = write_config(cfg, tmp_path / "watchkeeper.yaml")
    proc = subprocess.run([sys.executable, "-m", "watchkeeper", "worker", "--config", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "bad.rules.yml" in proc.stderr and "nosuchfunc" in proc.stderr
    assert "Traceback" not in proc.stderr
