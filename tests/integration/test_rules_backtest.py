"""Same results as live: a day of samples goes through the real worker (rules agent on the real broker)
and the real ClickHouse sink into chDB; `watchkeeper rules backtest` then replays the stored day with the
same rule file, and its alert transitions must be the ones the live worker produced, field for field
(labels, templated annotations, values, start and end times), and `--compare` must find no difference.
A changed threshold (the tuning use) must then show up as a difference."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import clickhouse_connect

from tests.integration.kafka_io import consume_until, produce
from tests.integration.test_rules_agent import Workers, canonical, rules_config
from watchkeeper.agents.rules_wiring import loaded_rules
from watchkeeper.core.rules.loader import load_rules_text
from watchkeeper.plumbing.config import Config
from watchkeeper.reports.backtest_report import build_document, run_backtest, text_report
from watchkeeper.schemas import AlertEvent, SampleBatch, SeriesBlock, decode, encode

DAY = 86400.0
T0 = float(int(time.time()) // 3600 * 3600 - 2 * 86400)  # two days ago, on the hour
STEP = 10.0
BLOCK = 600.0  # event-time seconds per message per source

RULES = """
groups:
  - name: temperature
    interval: 30s
    rules:
      - alert: HighTemperature
        expr: temperature > 50
        for: 1m
        labels: {severity: page}
        annotations: {summary: "{{ $labels.host }} is at {{ $value | humanize }} degrees"}
      - alert: TemperatureHeld
        expr: temperature > 55
        keep_firing_for: 5m
  - name: request-rates
    interval: 30s
    rules:
      - record: job:requests:rate1m
        expr: sum by (job) (rate(requests_total[1m]))
  - name: request-alerts
    interval: 1m
    rules:
      - alert: RequestRateHigh
        expr: job:requests:rate1m > 5
        for: 2m
        labels: {severity: ticket}
"""

# Hot spells of host a (start, end in seconds into the day): one long, two close together (a flap),
# and one too short for `for: 1m` on host b.
HOT_A = [(2 * 3600, 2 * 3600 + 600), (2 * 3600 + 840, 2 * 3600 + 1200), (15 * 3600, 16 * 3600)]
HOT_B = [(8 * 3600, 8 * 3600 + 40)]
BUSY = [(5 * 3600, 5 * 3600 + 1200), (20 * 3600, 20 * 3600 + 180)]  # 10 requests/s instead of 1


def temperature(t: float, host: str) -> float:
    spells = HOT_A if host == "a" else HOT_B
    return 60.0 if any(a <= t < b for a, b in spells) else 20.0 + (t % 3600) / 600.0


def requests(t: float) -> float:
    """The counter at t: 1/s, 10/s in busy spells."""
    extra = sum(9 * max(0.0, min(t, b) - a) for a, b in BUSY)
    return t + extra


def day_messages() -> tuple[list[tuple[bytes, bytes]], int]:
    out, points = [], 0
    block = 0.0
    while block < DAY:
        ts_rel = [block + i * STEP for i in range(int(BLOCK / STEP))]
        ts = [T0 + t for t in ts_rel]
        points += 4 * len(ts)
        for host in ("a", "b"):
            series = [SeriesBlock(name="temperature", ts=ts, values=[temperature(t, host) for t in ts_rel])]
            out.append((f"host-{host}".encode(), encode(SampleBatch(source=f"host-{host}", labels={"host": host},
                                                                    series=series))))
        # Both instances in one message: two sources sharing a partition would make each other's blocks
        # late (a partition's watermark is its newest sample - lateness), which the live rules skip; this key
        # hashes to a partition of its own (3 of 8), apart from host-a (0) and host-b (6).
        series = [SeriesBlock(name="requests_total", kind="counter", labels={"instance": instance}, ts=ts,
                              values=[requests(t) / 2 for t in ts_rel]) for instance in ("1", "2")]
        out.append((b"api-servers", encode(SampleBatch(source="api-servers", labels={"job": "api"}, series=series))))
        block += BLOCK
    return out, points


def live_alerts(cfg: Config, timeout: float = 150.0) -> list[AlertEvent]:
    """Every transition of the day, once the last busy spell's alert has resolved (and a quiet moment after)."""
    last = T0 + BUSY[-1][0]

    def done(recs: list[Any]) -> bool:
        return any(e.rule == "RequestRateHigh" and e.state == "resolved" and e.event_time > last
                   for e in (decode(r.value, AlertEvent) for r in recs))

    asyncio.run(consume_until(cfg.kafka.bootstrap, cfg.kafka.topics.alerts, done, timeout=timeout))
    time.sleep(2)
    recs = asyncio.run(consume_until(cfg.kafka.bootstrap, cfg.kafka.topics.alerts, lambda r: False, timeout=3))
    return [decode(r.value, AlertEvent) for r in recs]


async def _sink_until(cfg: Config, client: Any, samples: int, alerts: int) -> tuple[int, int]:
    from watchkeeper.commands.sink import run_clickhouse_sink

    stop = asyncio.Event()
    task = asyncio.create_task(run_clickhouse_sink(cfg, stop))
    deadline = time.monotonic() + 120
    got = (0, 0)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        try:
            got = (client.query("SELECT count() FROM samples FINAL").result_rows[0][0],
                   client.query("SELECT count() FROM alerts FINAL").result_rows[0][0])
        except Exception:
            continue
        if got[0] >= samples and got[1] >= alerts:
            break
    stop.set()
    await task
    return got


def test_backtest_of_a_stored_day_gives_the_live_alerts(wk_config: Config, tmp_path: Path, ch_dsn: str) -> None:
    cfg = rules_config(wk_config, tmp_path)
    (tmp_path / "rules.yml").write_text(RULES)  # rules_config wrote the agent test's rules there
    cfg.rules.files = [str(tmp_path / "rules.yml")]
    messages, points = day_messages()
    asyncio.run(produce(cfg.kafka.bootstrap, cfg.kafka.topics.samples, messages))
    workers = Workers(cfg, tmp_path)
    try:
        workers.start()
        live = live_alerts(cfg)
    finally:
        workers.close()
    rules_seen = {e.rule for e in live}
    assert rules_seen == {"HighTemperature", "TemperatureHeld", "RequestRateHigh"}, workers.logs()

    recorded = asyncio.run(consume_until(cfg.kafka.bootstrap, cfg.kafka.topics.samples, lambda r: False, timeout=5))
    recorded_points = sum(len(b.ts) for r in recorded if r.key and r.key.startswith(b"rules/")
                          for b in decode(r.value, SampleBatch).series)
    sink_cfg = cfg.model_copy(deep=True)
    sink_cfg.clickhouse.dsn = ch_dsn
    sink_cfg.clickhouse.flush_seconds = 0.5
    client = clickhouse_connect.get_client(dsn=ch_dsn)
    assert asyncio.run(_sink_until(sink_cfg, client, points + recorded_points, len(live))) == (
        points + recorded_points, len(live))

    loaded = loaded_rules(load_rules_text(RULES, "rules.yml"), cfg.rules.shards, cfg.windows.allowed_lateness)
    result = run_backtest(client, loaded, T0, T0 + DAY, cfg.windows.allowed_lateness, warmup=0.0,
                          with_compare=True, charts=True)
    assert result.samples == points  # the recorded series are computed again, not read
    assert canonical(result.events) == canonical(live)
    assert result.comparison is not None and result.comparison.identical
    assert len(result.comparison.matched) == len(live)
    by_rule = {s.rule: s for s in result.summaries}
    assert by_rule["HighTemperature"].flaps == 1 and by_rule["HighTemperature"].pending_only == 1
    assert by_rule == {s.rule: s for s in result.live_summaries}
    doc = build_document(result, ["rules.yml"])
    assert "0 only in the backtest, 0 only live" in text_report(doc)
    assert len(doc.sections[-1].charts) == 3

    # Tuning: a lower threshold with a shorter `for` fires where live did not; --compare says where.
    tuned = RULES.replace("job:requests:rate1m > 5\n        for: 2m", "job:requests:rate1m > 0.5\n        for: 1m")
    loaded = loaded_rules(load_rules_text(tuned, "tuned.yml"), cfg.rules.shards, cfg.windows.allowed_lateness)
    result = run_backtest(client, loaded, T0, T0 + DAY, cfg.windows.allowed_lateness, warmup=0.0,
                          with_compare=True)
    assert result.comparison is not None and not result.comparison.identical
    assert {e.rule for e in result.comparison.only_backtest} == {"RequestRateHigh"}
    assert {e.rule for e in result.comparison.only_live} == {"RequestRateHigh"}



def test_readme_demo_a_tuned_threshold_pages_on_the_near_miss_too(tmp_path: Path) -> None:
    """`watchkeeper demo load`, then the README's two backtests (read straight from the chDB directory:
    the same queries `watchkeeper up`'s endpoint answers)."""
    config = tmp_path / "watchkeeper.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\n")
    repo = Path(__file__).resolve().parents[2]

    def wk(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "watchkeeper", *args], capture_output=True, text=True,
                              timeout=600, cwd=repo)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert "725,760 samples" in wk("demo", "load", "--config", str(config))
    dsn = f"chdb://{tmp_path / 'data' / 'clickhouse'}"
    fired = {}
    for name in ("demo", "demo-tuned"):
        out = wk("rules", "backtest", f"examples/rules/{name}.rules.yml", "--from", "-7d", "--to", "now",
                 "--config", str(config), "--dsn", dsn, "--format", "md", "-o", str(tmp_path / f"{name}.md"))
        row = next(line.split() for line in out.splitlines() if line.startswith("DemoHighErrorRate "))
        fired[name] = int(row[2])
        assert (tmp_path / f"{name}_charts" / "rule_000.png").exists()
    assert fired == {"demo": 1, "demo-tuned": 2}
