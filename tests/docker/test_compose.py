"""docker-compose.yml: validated by `docker compose config` wherever the client exists; brought up only
where a Docker engine runs (never on the CI machines, which have none)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _engine() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def _compose() -> list[str] | None:
    """`docker compose` (v2 plugin) where present, else Debian's `docker-compose` (v1)."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


@pytest.mark.skipif(_compose() is None, reason="no docker compose client")
def test_compose_file_is_valid() -> None:
    compose = _compose()
    assert compose is not None
    proc = subprocess.run([*compose, "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_compose_services_use_the_server_dsn() -> None:
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "clickhouse", "worker", "clickhouse-sink", "system-producer"} <= set(services)
    for name in ("worker", "clickhouse-sink", "system-producer"):
        env = services[name]["environment"]
        assert env["WK_CLICKHOUSE_DSN"].startswith("http://")
        assert env["WK_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


@pytest.mark.docker
@pytest.mark.skipif(not _engine(), reason="no Docker engine (docker info fails)")
def test_compose_stack_comes_up() -> None:
    subprocess.run(["docker", "compose", "up", "-d", "--build", "--wait"], cwd=ROOT, check=True, timeout=900)
    try:
        out = subprocess.run(["docker", "compose", "exec", "-T", "worker", "watchkeeper", "sql",
                              "SELECT 1"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.stdout.strip() == "1"
    finally:
        subprocess.run(["docker", "compose", "down", "-v"], cwd=ROOT, timeout=300)
