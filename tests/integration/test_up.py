"""`watchkeeper up` as a user runs it: after ~30 s, system samples and aggregates are in ClickHouse and
answer over the read-only HTTP endpoint; Ctrl-C stops everything and leaves no process behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tests.conftest import write_config
from watchkeeper.plumbing.broker import free_port
from watchkeeper.plumbing.config import Config


def _query(port: int, sql: str) -> str:
    url = f"http://127.0.0.1:{port}/?" + urllib.parse.urlencode({"query": sql})
    with urllib.request.urlopen(url, timeout=10) as resp:
        return str(resp.read().decode())


def _survivors(marker: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


def test_up_fills_clickhouse_and_stops_cleanly(tmp_path: Path) -> None:
    cfg = Config(data_dir=str(tmp_path / "data"))
    broker_port = free_port()
    cfg.kafka.bootstrap = f"127.0.0.1:{broker_port}"
    cfg.kafka.session_timeout = 6.0
    cfg.clickhouse.http_port = free_port()
    cfg.clickhouse.flush_seconds = 1.0
    cfg.dashboard.port = free_port()
    cfg.worker.web_port = free_port()
    cfg.producers.system.interval = 2.0
    cfg_path = write_config(cfg, tmp_path / "watchkeeper.yaml")
    out = open(tmp_path / "up.out", "wb")  # noqa: SIM115
    up = subprocess.Popen([sys.executable, "-m", "watchkeeper", "up", "--config", str(cfg_path)],
                          stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        samples = aggregates = 0
        while time.monotonic() < deadline:
            time.sleep(2)
            try:
                samples = int(_query(cfg.clickhouse.http_port, "SELECT count() FROM samples"))
                aggregates = int(_query(cfg.clickhouse.http_port, "SELECT count() FROM aggregates"))
            except OSError:
                continue
            if samples and aggregates and time.monotonic() > deadline - 60:
                break
        assert samples > 0 and aggregates > 0, (tmp_path / "up.out").read_text()
        names = _query(cfg.clickhouse.http_port, "SELECT DISTINCT name FROM samples ORDER BY name").split()
        assert {"node_cpu_seconds_total", "node_memory_used_percent", "node_load1"} <= set(names)
        cpu = _query(cfg.clickhouse.http_port,
                     "SELECT max(increase) FROM aggregates FINAL WHERE name = 'node_cpu_seconds_total'")
        assert float(cpu) > 0  # the reset-aware increase of a real counter
        with urllib.request.urlopen(f"http://127.0.0.1:{cfg.dashboard.port}/healthz", timeout=10) as resp:
            assert resp.status == 200
        # read-only: writes are refused
        try:
            _query(cfg.clickhouse.http_port, "DROP TABLE samples")
            raise AssertionError("the endpoint accepted a write")
        except urllib.error.HTTPError as exc:
            assert exc.code == 403 and b"READONLY" in exc.read()
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(timeout=60)
        out.close()
    assert code == 0
    assert "stopped." in (tmp_path / "up.out").read_text()
    assert _survivors(str(cfg_path)) == []
    assert _survivors(f"127.0.0.1:{broker_port}") == []
