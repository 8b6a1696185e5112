"""Silences made with the real `watchkeeper silence` CLI show on the dashboard `watchkeeper dashboard` serves
(the process `watchkeeper up` runs): active and pending ones with matchers, author, comment, start and end;
an expired one does not."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tests.conftest import write_config
from watchkeeper.plumbing.broker import free_port
from watchkeeper.plumbing.config import Config


def _cli(cfg_path: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "watchkeeper", "silence", "--config", str(cfg_path), *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _overview(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/overview", timeout=30) as resp:
        return dict(json.loads(resp.read()))


def test_cli_silences_on_the_dashboard(tmp_path: Path) -> None:
    cfg = Config(data_dir=str(tmp_path / "data"))
    cfg.dashboard.port = free_port()
    cfg.clickhouse.http_port = free_port()  # nothing listens: the overview reports ClickHouse down, silences still
    cfg_path = write_config(cfg, tmp_path / "watchkeeper.yaml")
    active = _cli(cfg_path, "add", "alertname=DiskFull", 'instance=~"web-.*"', "--duration", "2h",
                  "--comment", "disk swap", "--author", "alice")
    hour = datetime.now() + timedelta(hours=1)
    pending = _cli(cfg_path, "add", "severity!=critical", "--start", hour.isoformat(timespec="seconds"),
                   "--duration", "30m", "--comment", "tonight", "--author", "bob")
    expired = _cli(cfg_path, "add", "alertname=Old", "--start", "2026-01-01T00:00", "--end", "2026-01-01T01:00")
    ended = _cli(cfg_path, "add", "alertname=Ended", "--duration", "1h")
    _cli(cfg_path, "expire", ended[:8])

    log = open(tmp_path / "dashboard.log", "wb")  # noqa: SIM115
    dash = subprocess.Popen([sys.executable, "-m", "watchkeeper", "dashboard", "--config", str(cfg_path)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                body = _overview(cfg.dashboard.port)
                break
            except OSError:
                assert dash.poll() is None and time.monotonic() < deadline, (tmp_path / "dashboard.log").read_text()
                time.sleep(0.3)
        silences = {s["id"]: s for s in body["silences"]}
        assert list(silences) == [active, pending], "active then pending; expired ones are not listed"
        assert expired not in silences and ended not in silences
        a = silences[active]
        assert a["status"] == {"state": "active"}
        assert a["matchers"] == [
            {"name": "alertname", "value": "DiskFull", "isRegex": False, "isEqual": True},
            {"name": "instance", "value": "web-.*", "isRegex": True, "isEqual": True},
        ]
        assert (a["createdBy"], a["comment"]) == ("alice", "disk swap")
        starts = datetime.fromisoformat(a["startsAt"])
        ends = datetime.fromisoformat(a["endsAt"])
        assert ends - starts == timedelta(hours=2) and abs(starts.timestamp() - time.time()) < 120
        p = silences[pending]
        assert p["status"] == {"state": "pending"} and (p["createdBy"], p["comment"]) == ("bob", "tonight")
        assert p["matchers"] == [{"name": "severity", "value": "critical", "isRegex": False, "isEqual": False}]
        assert abs(datetime.fromisoformat(p["startsAt"]).timestamp() - hour.replace(microsecond=0).timestamp()) < 1

        _cli(cfg_path, "expire", active)  # expiring it takes it off the next refresh
        assert [s["id"] for s in _overview(cfg.dashboard.port)["silences"]] == [pending]
    finally:
        dash.terminate()
        dash.wait(timeout=30)
        log.close()
