"""Acknowledgement and escalation through the real notification sink (a subprocess on real tansu), levels
told by a local recording server: an unacknowledged alert reaches levels 1, 2, 3 at the configured delays,
a SIGKILL and restart in the middle neither restarts nor skips a level, an ack at level 2 stops it, a
resolution tells every level that was notified, and every step is on wk.notifications."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import write_config
from tests.integration.kafka_io import consume_until
from tests.integration.notify_peers import RecordingServer
from tests.integration.test_notify_sink import send, start_sink, wait_for
from watchkeeper.plumbing.config import Config
from watchkeeper.schemas.alerts import AlertEvent
from watchkeeper.sinks.ack_store import acknowledge

AFTER = 5  # seconds: room for a loaded machine between seeing level 2 and acknowledging
CONFIG = """
escalation_policies:
  - name: ops-tech-external
    levels:
      - {{receivers: [ops], after: {after}s}}
      - {{receivers: [tech], after: {after}s}}
      - {{receivers: [external]}}
route:
  receiver: ops
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
  escalation: ops-tech-external
receivers:
  - name: ops
    webhook_configs: [{{url: "{url}/ops"}}]
  - name: tech
    webhook_configs: [{{url: "{url}/tech"}}]
  - name: external
    webhook_configs: [{{url: "{url}/external"}}]
"""


def alert(name: str, state: str, t: float) -> AlertEvent:
    return AlertEvent(fingerprint=f"fp{name}", rule=name, state=state,  # type: ignore[arg-type]
                      labels={"alertname": name, "severity": "critical"}, starts_at=t,
                      ends_at=t + 1 if state == "resolved" else None, event_time=t)


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    srv = RecordingServer().start()
    yield srv
    srv.stop()


def _setup(cfg: Config, tmp: Path, server: RecordingServer) -> Path:
    (tmp / "alertmanager.yml").write_text(CONFIG.format(url=server.url, after=AFTER))
    cfg.notify.alertmanager_config = str(tmp / "alertmanager.yml")
    return write_config(cfg, tmp / "watchkeeper.yaml")


def _records(cfg: Config, done: Any) -> list[dict[str, Any]]:
    recs = asyncio.run(consume_until(cfg.kafka.bootstrap, cfg.kafka.topics.notifications,
                                     lambda rs: done([orjson.loads(r.value) for r in rs])))
    return [orjson.loads(r.value) for r in recs]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)


def test_levels_at_their_delays_across_a_sigkill_and_resolved_to_every_level(
        wk_config: Config, tmp_path: Path, server: RecordingServer) -> None:
    cfg_path = _setup(wk_config, tmp_path, server)
    log = tmp_path / "sink.log"
    proc = start_sink(cfg_path, log)
    try:
        t0 = time.time()
        send(wk_config, [alert("Down", "firing", t0)])
        wait_for(lambda: server.at("/tech"), 60, proc, log)
        # Killed once level 2 is recorded: before that, a kill sends /tech again (at least once, as Alertmanager)
        # or loses the level's `escalated` record (sent after the level is stored: see the note in notify_sink).
        _records(wk_config, lambda rs: any(r["receiver"] == "tech" and r["status"] == "sent" for r in rs)
                 and any(r["status"] == "escalated" and r["attempt"] == 2 for r in rs))
        proc.send_signal(signal.SIGKILL)  # mid-policy: level 2 reached, level 3 due AFTER s later
        proc.wait(10)
        proc = start_sink(cfg_path, log)
        wait_for(lambda: server.at("/external"), 60, proc, log)
        time.sleep(2)
        assert len(server.at("/ops")) == 1 and len(server.at("/tech")) == 1  # not restarted at level 1
        send(wk_config, [alert("Down", "resolved", t0 + 30)])
        wait_for(lambda: all(len(server.at(p)) == 2 for p in ("/ops", "/tech", "/external")), 60, proc, log)
        time.sleep(2)
    finally:
        _stop(proc)
    for path in ("/ops", "/tech", "/external"):
        assert [r.body["status"] for r in server.at(path)] == ["firing", "resolved"], path
    recs = _records(wk_config, lambda rs: any("ended" in r["error"] for r in rs))
    steps = [r for r in recs if r["status"] == "escalated"]
    assert [s["attempt"] for s in steps if "notifying" in s["error"]] == [1, 2, 3]
    assert [s["receiver"] for s in steps if "notifying" in s["error"]] == ["ops", "tech", "external"]
    # Each level only after the one before had its response time (level 3 by the restarted sink: not at once,
    # nor restarted at 1). The sink's own times: the server's receipts add the delivery's latency to each.
    at = [s["time"] for s in steps if "notifying" in s["error"]]
    assert at[1] - at[0] >= AFTER and at[2] - at[1] >= AFTER, at
    assert "level 3 of 3 (ops-tech-external)" in steps[-1]["error"] and "ended, resolved" in steps[-1]["error"]


def test_an_ack_at_level_2_stops_the_escalation_and_is_recorded(
        wk_config: Config, tmp_path: Path, server: RecordingServer) -> None:
    cfg_path = _setup(wk_config, tmp_path, server)
    log = tmp_path / "sink.log"
    proc = start_sink(cfg_path, log)
    try:
        t0 = time.time()
        send(wk_config, [alert("Slow", "firing", t0)])
        wait_for(lambda: server.at("/tech"), 60, proc, log)
        ack, _ = acknowledge(wk_config.data_path, comment="tech is on it", by="tina", fingerprint="fpSlow",
                             now=time.time())
        recs = _records(wk_config, lambda rs: any(r["status"] == "acknowledged" for r in rs))
        time.sleep(AFTER + 3)  # well past level 2's response time
        assert server.at("/external") == []
        assert len(server.at("/ops")) == 1 and len(server.at("/tech")) == 1  # and no repeats
        send(wk_config, [alert("Slow", "resolved", t0 + 30)])
        wait_for(lambda: len(server.at("/tech")) == 2, 60, proc, log)
    finally:
        _stop(proc)
    (rec,) = [r for r in recs if r["status"] == "acknowledged"]
    assert rec["receiver"] == "tina" and rec["notification_id"] == ack.id and rec["alerts"] == ["fpSlow"]
    assert "tech is on it" in rec["error"] and abs(rec["time"] - ack.created_at) < 1e-3
    recs = _records(wk_config, lambda rs: any("ended" in r["error"] for r in rs))
    held = [r for r in recs if r["status"] == "escalated" and r["error"].startswith("held")]
    assert held and "level 2 of 3" in held[0]["error"]
    assert Counter(r["status"] for r in recs)["ack_suppressed"] >= 1


def test_an_ack_made_while_the_sink_is_down_is_recorded_once(
        wk_config: Config, tmp_path: Path, server: RecordingServer) -> None:
    cfg_path = _setup(wk_config, tmp_path, server)
    ack, covered = acknowledge(wk_config.data_path, comment="known, fixing", by="omar",
                               matchers='alertname="Down"', now=time.time())
    assert covered == []  # the sink never ran here: nothing firing that it knows of
    log = tmp_path / "sink.log"
    for _ in range(2):  # a restart does not record it again
        proc = start_sink(cfg_path, log)
        try:
            recs = _records(wk_config, lambda rs: any(r["status"] == "acknowledged" for r in rs))
            time.sleep(2)
        finally:
            _stop(proc)
    recs = _records(wk_config, lambda rs: any(r["status"] == "acknowledged" for r in rs))
    acked = [r for r in recs if r["status"] == "acknowledged"]
    assert len(acked) == 1 and acked[0]["notification_id"] == ack.id and acked[0]["receiver"] == "omar"
    assert acked[0]["group_key"] == '{alertname="Down"}' and "known, fixing" in acked[0]["error"]
