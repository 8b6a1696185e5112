"""The notification sink end to end: alerts in on wk.alerts (real tansu), notifications out to a local
server that fails on purpose; the sink as a real subprocess, killed with SIGKILL mid-delivery."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.conftest import write_config
from tests.integration.kafka_io import consume_until, produce
from tests.integration.notify_peers import RecordingServer
from watchkeeper.plumbing.config import Config
from watchkeeper.schemas.alerts import AlertEvent
from watchkeeper.schemas.codec import encode

AM_CONFIG = """
route:
  receiver: team
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: team
    webhook_configs: [{{url: "{url}/hook"}}]
    slack_configs: [{{api_url: "{url}/slack", channel: "#ops"}}]
    pagerduty_configs: [{{routing_key: "R1", url: "{url}/pd"}}]
"""


def alert(name: str, state: str, t: float) -> AlertEvent:
    labels = {"alertname": name, "severity": "high"}
    return AlertEvent(fingerprint=f"{abs(hash(name)) % 16**16:016x}", rule=name, state=state,
                      labels=labels, starts_at=t, ends_at=t + 1 if state == "resolved" else None, event_time=t)


def start_sink(cfg_path: Path, log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")  # noqa: SIM115 (the child owns it)
    return subprocess.Popen([sys.executable, "-m", "watchkeeper", "sink", "notify", "--config", str(cfg_path)],
                            stdout=out, stderr=subprocess.STDOUT)


def setup(cfg: Config, tmp: Path, server: RecordingServer, **notify: float) -> Path:
    (tmp / "alertmanager.yml").write_text(AM_CONFIG.format(url=server.url))
    cfg.notify.alertmanager_config = str(tmp / "alertmanager.yml")
    for k, v in notify.items():
        setattr(cfg.notify, k, v)
    return write_config(cfg, tmp / "watchkeeper.yaml")


def send(cfg: Config, events: list[AlertEvent]) -> None:
    asyncio.run(produce(cfg.kafka.bootstrap, cfg.kafka.topics.alerts,
                        [(e.fingerprint.encode(), encode(e)) for e in events]))


def wait_for(cond: object, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"timed out; sink log:\n{log.read_text()[-3000:]}")


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    srv = RecordingServer().start()
    yield srv
    srv.stop()


def test_receiver_down_for_30_s_then_every_notification_arrives_once(wk_config: Config, tmp_path: Path,
                                                                       server: RecordingServer) -> None:
    cfg_path = setup(wk_config, tmp_path, server, retry_initial_seconds=0.5, retry_max_seconds=2.0)
    log = tmp_path / "sink.log"
    server.fail_until = time.time() + 30
    proc = start_sink(cfg_path, log)
    try:
        t0 = time.time()
        names = [f"Alert{i}" for i in range(10)]
        send(wk_config, [alert(n, "pending", t0) for n in names] + [alert(n, "firing", t0) for n in names])
        wait_for(lambda: len(server.requests) >= 30, 120, proc, log)
        time.sleep(3)  # anything extra would show up now
        per = Counter((r.path, _group(r)) for r in server.requests)
        assert set(per.values()) == {1}, per  # every notification once, none twice
        assert {p for p, _ in per} == {"/hook", "/slack", "/pd"} and len(per) == 30
        assert min(r.time for r in server.requests) >= server.fail_until

        send(wk_config, [alert(n, "resolved", t0 + 60) for n in names])
        wait_for(lambda: len(server.requests) >= 50, 60, proc, log)
        time.sleep(3)
        resolved = [r for r in server.requests if _status(r) == "resolved"]
        # slack's send_resolved defaults to false (as in Alertmanager): only webhook and PagerDuty hear it
        assert Counter(r.path for r in resolved) == {"/hook": 10, "/pd": 10} and len(server.requests) == 50
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    recs = asyncio.run(consume_until(wk_config.kafka.bootstrap, wk_config.kafka.topics.notifications,
                                     lambda rs: sum(orjson.loads(r.value)["status"] == "sent" for r in rs) >= 50))
    statuses = Counter(orjson.loads(r.value)["status"] for r in recs)
    assert statuses["sent"] == 50 and statuses["retrying"] >= 30  # every attempt recorded, with its error
    retry = next(orjson.loads(r.value) for r in recs if orjson.loads(r.value)["status"] == "retrying")
    assert "HTTP 500" in retry["error"] and retry["receiver"] == "team"


def test_sigkill_mid_delivery_loses_nothing(wk_config: Config, tmp_path: Path, server: RecordingServer) -> None:
    (tmp_path / "alertmanager.yml").write_text(AM_CONFIG.format(url=server.url).split("    slack_configs")[0])
    wk_config.notify.alertmanager_config = str(tmp_path / "alertmanager.yml")
    wk_config.notify.parallel_deliveries = 4
    cfg_path = write_config(wk_config, tmp_path / "watchkeeper.yaml")
    log = tmp_path / "sink.log"
    server.delay = 0.4
    proc = start_sink(cfg_path, log)
    t0 = time.time()
    names = [f"Kill{i}" for i in range(40)]
    send(wk_config, [alert(n, "firing", t0) for n in names])
    try:
        wait_for(lambda: len(server.requests) >= 6, 60, proc, log)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed_with = len(server.requests)
        proc = start_sink(cfg_path, log)
        wait_for(lambda: len({_group(r) for r in server.requests}) >= 40, 120, proc, log)
        time.sleep(3)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    per = Counter(_group(r) for r in server.requests)
    assert len(per) == 40  # nothing lost
    doubled = sum(c - 1 for c in per.values())
    assert doubled <= 4, f"{doubled} sent twice (at most the 4 in flight at the kill may be); killed at {killed_with}"


def _group(r: object) -> str:
    body = r.body  # type: ignore[attr-defined]
    if "groupKey" in body:
        return str(body["groupKey"])
    if "dedup_key" in body:
        return str(body["dedup_key"]) + body["event_action"]
    return str(body["attachments"][0]["title"])


def _status(r: object) -> str:
    body = r.body  # type: ignore[attr-defined]
    if "status" in body:
        return str(body["status"])
    if "event_action" in body:
        return "resolved" if body["event_action"] == "resolve" else "firing"
    return "resolved" if body["attachments"][0]["color"] == "good" else "firing"
