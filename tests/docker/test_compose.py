"""docker-compose.yml: validated by `docker compose config` wherever the client exists; brought up only
where a Docker engine runs (never on the CI machines, which have none). No password in the repository (compose
refuses to start without CLICKHOUSE_PASSWORD from .env) and nothing published on the host unless the
`docker-compose.ports.yml` override is added, and then on 127.0.0.1 only."""

from __future__ import annotations

import os
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


MISSING_PASSWORD = "set CLICKHOUSE_PASSWORD in .env, see README"


def _config(tmp_path: Path, password: str | None, *files: str) -> subprocess.CompletedProcess[str]:
    """`docker compose config` on `files` with CLICKHOUSE_PASSWORD set or not, ignoring any .env of the checkout."""
    compose = _compose()
    assert compose is not None
    env = {k: v for k, v in os.environ.items() if k != "CLICKHOUSE_PASSWORD"}
    if password is not None:
        env["CLICKHOUSE_PASSWORD"] = password
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    args = [a for f in files for a in ("-f", str(ROOT / f))]
    return subprocess.run([*compose, "--env-file", str(env_file), *args, "config"], capture_output=True, text=True,
                          env=env)


def _published(config_text: str) -> list[tuple[str, str]]:
    """(service, published address:port) for every port `docker compose config` publishes."""
    import yaml

    out = []
    for name, service in yaml.safe_load(config_text)["services"].items():
        for port in service.get("ports", []):
            if isinstance(port, dict):  # compose v2's long form
                out.append((name, f"{port.get('host_ip', '0.0.0.0')}:{port.get('published')}"))
            else:
                parts = str(port).split("/")[0].split(":")
                out.append((name, ":".join(parts[:-1]) if len(parts) == 3 else f"0.0.0.0:{parts[0]}"))
    return out


@pytest.mark.skipif(_compose() is None, reason="no docker compose client")
def test_compose_file_is_valid(tmp_path: Path) -> None:
    proc = _config(tmp_path, "pw-for-the-test", "docker-compose.yml")
    assert proc.returncode == 0, proc.stderr
    assert "http://default:pw-for-the-test@clickhouse:8123/default" in proc.stdout


@pytest.mark.skipif(_compose() is None, reason="no docker compose client")
def test_compose_refuses_to_start_without_a_password(tmp_path: Path) -> None:
    for password in (None, ""):  # unset, or .env.example copied without filling it in
        proc = _config(tmp_path, password, "docker-compose.yml")
        assert proc.returncode != 0
        assert MISSING_PASSWORD in proc.stderr


@pytest.mark.skipif(_compose() is None, reason="no docker compose client")
def test_compose_publishes_nothing_by_default_and_loopback_only_on_request(tmp_path: Path) -> None:
    default = _config(tmp_path, "pw", "docker-compose.yml")
    assert default.returncode == 0, default.stderr
    assert _published(default.stdout) == []
    opted = _config(tmp_path, "pw", "docker-compose.yml", "docker-compose.ports.yml")
    assert opted.returncode == 0, opted.stderr
    published = _published(opted.stdout)
    assert sorted(published) == [("clickhouse", "127.0.0.1:8123"), ("kafka", "127.0.0.1:9094")]


def test_no_password_in_the_repository() -> None:
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["clickhouse"]["environment"]["CLICKHOUSE_PASSWORD"].startswith(
        "${CLICKHOUSE_PASSWORD:?")
    assert "${CLICKHOUSE_PASSWORD:?" in compose["x-watchkeeper"]["environment"]["WK_CLICKHOUSE_DSN"]
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert "CLICKHOUSE_PASSWORD=\n" in (ROOT / ".env.example").read_text()


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
    env = {**os.environ, "CLICKHOUSE_PASSWORD": os.environ.get("CLICKHOUSE_PASSWORD") or "wk-compose-test"}
    subprocess.run(["docker", "compose", "up", "-d", "--build", "--wait"], cwd=ROOT, check=True, timeout=900, env=env)
    try:
        out = subprocess.run(["docker", "compose", "exec", "-T", "worker", "watchkeeper", "sql",
                              "SELECT 1"], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
        assert out.stdout.strip() == "1"
    finally:
        subprocess.run(["docker", "compose", "down", "-v"], cwd=ROOT, timeout=300, env=env)
