"""`/metrics` under `watchkeeper up`: the worker, the ClickHouse sink and the dashboard are separate processes,
and the dashboard still shows the worker's and the sink's counters (prometheus-client multiprocess mode).

Real components throughout: `watchkeeper up --no-broker` on the session's tansu broker (worker, ClickHouse sink
on embedded chDB, notification sink, dashboard; producers off so the only samples are the test's), samples and
an alert sent through Kafka, the alert's webhook a local server failing on purpose, a rule failing at every
tick on purpose, `/metrics` read with prometheus-client's own text parser.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import write_config
from tests.integration.kafka_io import produce
from tests.integration.notify_peers import RecordingServer
from watchkeeper.plumbing.config import Config
from watchkeeper.schemas import AlertEvent, SampleBatch, SeriesBlock, encode

SERIES = 6
POINTS = 120  # one per second, ending now: windows of 10 s close up to ~15 s before now
PER_MESSAGE = 40
WEBHOOK = (("integration", "webhook[0]"), ("receiver", "team"))  # the labels of its notification errors
AM_CONFIG = """
route: {{receiver: team, group_wait: 0s, group_interval: 1s, repeat_interval: 1h}}
receivers:
  - name: team
    webhook_configs: [{{url: "{url}/hook"}}]
"""
# The six series differ only in `instance`, which the alert's own label overwrites: Prometheus refuses such a
# result at every evaluation ("vector contains metrics with the same labelset after applying alert labels").
FAILING_RULES = """
groups:
  - name: clash
    interval: 10s
    rules:
      - alert: Collide
        expr: wk_test_metric
        labels: {instance: same}
"""
RULE_FAILURES = (("group", "clash"),)


def _messages(now: float) -> tuple[list[tuple[bytes | None, bytes]], int]:
    messages: list[tuple[bytes | None, bytes]] = []
    sent = 0
    start = int(now) - POINTS + 1
    for s in range(SERIES):
        name = "wk_test_metric"
        labels = {"instance": f"host-{s}"}
        for first in range(0, POINTS, PER_MESSAGE):
            ts = [float(start + i) for i in range(first, first + PER_MESSAGE)]
            block = SeriesBlock(name=name, labels=labels, ts=ts, values=[float(i % 7) for i in range(len(ts))])
            messages.append((f"host-{s}".encode(), encode(SampleBatch(source="test", series=[block]))))
            sent += len(ts)
    messages.append((b"bad", b"not a sample batch"))  # dead-lettered: consumed, but no samples in it
    return messages, sent


def _scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as resp:
        text = resp.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name][tuple(sorted(s.labels.items()))] = s.value
    return out


def _rule_failures_shown(port: int) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/overview", timeout=30) as resp:
        return list(json.loads(resp.read())["rule_failures"]["recent"])


def test_metrics_from_every_process(wk_config: Config, tmp_path: Path) -> None:
    cfg = wk_config
    cfg.producers.system.enabled = False
    cfg.producers.push.enabled = False
    cfg.clickhouse.flush_seconds = 0.5
    webhook = RecordingServer(fail_until=time.time() + 3600).start()  # answers 500: every attempt fails
    (tmp_path / "alertmanager.yml").write_text(AM_CONFIG.format(url=webhook.url))
    cfg.notify.alertmanager_config = str(tmp_path / "alertmanager.yml")
    cfg.notify.retry_initial_seconds = 0.5
    (tmp_path / "clash.rules.yml").write_text(FAILING_RULES)
    cfg.rules.files = [str(tmp_path / "clash.rules.yml")]
    cfg_path = write_config(cfg, tmp_path / "watchkeeper.yaml")
    out = open(tmp_path / "up.out", "wb")  # noqa: SIM115
    up = subprocess.Popen([sys.executable, "-m", "watchkeeper", "up", "--no-broker", "--config", str(cfg_path)],
                          stdout=out, stderr=subprocess.STDOUT)
    topic = cfg.kafka.topics.samples
    m: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    try:
        messages, sent = _messages(time.time())
        asyncio.run(produce(cfg.kafka.bootstrap, topic, messages))
        now = time.time()
        alert = AlertEvent(fingerprint="00000000000000aa", rule="Down", state="firing", severity="critical",
                           labels={"alertname": "Down"}, starts_at=now, event_time=now)
        asyncio.run(produce(cfg.kafka.bootstrap, cfg.kafka.topics.alerts, [(b"Down", encode(alert))]))
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            time.sleep(2)
            assert up.poll() is None, (tmp_path / "up.out").read_text()
            try:
                m = _scrape(cfg.dashboard.port)
            except OSError:
                continue
            consumed = m["watchkeeper_samples_consumed_total"].get((("topic", topic),), 0)
            stored = m["watchkeeper_sink_rows_total"].get((("sink", "clickhouse"), ("table", "samples")), 0)
            lags = [v for k, v in m["watchkeeper_consumer_lag_messages"].items() if ("topic", topic) in k]
            windows = m["watchkeeper_window_close_latency_seconds_count"].get((), 0)
            failed = m["watchkeeper_notification_errors_total"].get(WEBHOOK)
            rule_failed = m["watchkeeper_rule_evaluation_failures_total"].get(RULE_FAILURES)
            if (consumed == sent and stored == sent and windows > 0 and len(lags) == 8 and not any(lags) and failed
                    and rule_failed and _rule_failures_shown(cfg.dashboard.port)):
                break
        print({k: dict(v) for k, v in m.items() if k.startswith("watchkeeper_") and "bucket" not in k})
        logs = {p.name: p.read_text()[-3000:] for p in (cfg.data_path / "logs").glob("*.log")}
        assert m, f"the dashboard never answered /metrics: {logs}"
        # the worker's counter, read by the dashboard from another process's files
        assert m["watchkeeper_samples_consumed_total"][(("topic", topic),)] == sent, logs
        # the ClickHouse sink's rows: every sample stored, and windows aggregated
        rows = m["watchkeeper_sink_rows_total"]
        assert rows[(("sink", "clickhouse"), ("table", "samples"))] == sent
        assert rows[(("sink", "clickhouse"), ("table", "aggregates"))] > 0
        # window close latency: windows of data up to 2 min old, observed once per emitted batch
        assert m["watchkeeper_window_close_latency_seconds_count"][()] > 0
        latency = m["watchkeeper_window_close_latency_seconds_sum"][()] / m[
            "watchkeeper_window_close_latency_seconds_count"][()]
        assert 5 <= latency <= 300
        # consumer lag per owned partition (all 8: this is the only worker; empty ones too), caught up to 0
        lags = {dict(k)["partition"]: v for k, v in m["watchkeeper_consumer_lag_messages"].items()
                if dict(k).get("topic") == topic}
        assert sorted(lags) == [str(p) for p in range(8)] and set(lags.values()) == {0.0}, lags
        # the notification sink's failed webhook attempts (its own process too)
        assert m["watchkeeper_notification_errors_total"][WEBHOOK] >= 1
        assert not webhook.requests
        # the rules agent's failed evaluations: counted per group, and the last ones of the rule on the dashboard
        assert m["watchkeeper_rule_evaluation_failures_total"][RULE_FAILURES] >= 1
        shown = _rule_failures_shown(cfg.dashboard.port)
        assert shown and {(f["group"], f["rule"]) for f in shown} == {("clash", "Collide")}, shown
        assert "same labelset" in shown[0]["message"]
        # no sink errors; the dashboard's own request counter comes through the same files
        assert sum(m["watchkeeper_sink_errors_total"].values()) == 0
        assert m["watchkeeper_dashboard_requests_total"][(("code", "200"), ("path", "/metrics"))] >= 1
        # the ClickHouse-derived gauges beside them
        assert m["watchkeeper_clickhouse_up"][()] == 1
        assert m["watchkeeper_stored_rows"][(("table", "samples"),)] == sent
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(timeout=90)
        out.close()
        webhook.stop()
    assert code == 0
    assert {p.name.split("_")[0] for p in (cfg.data_path / "metrics").glob("*.db")} >= {"counter", "histogram"}
