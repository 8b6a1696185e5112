"""Shared fixtures: a real tansu broker per test session, one chDB directory per test process."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from watchkeeper.plumbing.broker import free_port, start_broker
from watchkeeper.plumbing.config import Config
from watchkeeper.plumbing.topics import ensure_topics, topic_plan

# CI draws the same examples every run (a submission never fails on an example drawn by chance) and keeps no
# example database; outside CI hypothesis searches randomly, and every counterexample it finds becomes an
# explicit test. HYPOTHESIS_PROFILE overrides either way.
# No deadline or too-slow check in CI: a loaded machine must not turn a slow example into a failure.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a real tansu broker (in-memory storage) for this test session."""
    port = free_port()
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    proc = start_broker("127.0.0.1", port, log_path=log)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except Exception:
            proc.kill()


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """chDB allows one data directory per process, so the whole test process shares this one."""
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def ch_dsn(chdb_dir: Path, request: pytest.FixtureRequest) -> str:
    """A chDB DSN with a database of this test's own (created empty)."""
    import clickhouse_connect

    db = "t_" + re.sub(r"\W", "_", request.node.name)[:40] + "_" + uuid.uuid4().hex[:6]
    client = clickhouse_connect.get_client(dsn=f"chdb://{chdb_dir}")
    client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    return f"chdb://{chdb_dir}?database={db}"


@pytest.fixture
def wk_config(broker: str, tmp_path: Path, request: pytest.FixtureRequest) -> Config:
    """A Config on the session broker with topic names unique to this test, topics already created."""
    suffix = uuid.uuid4().hex[:8]
    cfg = Config(data_dir=str(tmp_path / "data"))
    cfg.kafka.bootstrap = broker
    cfg.kafka.session_timeout = 6.0
    for key in ("samples", "aggregates", "alerts", "notifications", "deadletter"):
        setattr(cfg.kafka.topics, key, f"t{suffix}.{key}")
    cfg.worker.app_id = f"wk-test-{suffix}"
    cfg.worker.web_port = free_port()
    cfg.clickhouse.http_port = free_port()
    cfg.dashboard.port = free_port()
    cfg.producers.push.port = free_port()
    asyncio.run(ensure_topics(broker, topic_plan(cfg.kafka.topics)))
    return cfg


def write_config(cfg: Config, path: Path) -> Path:
    """Write `cfg` as a watchkeeper.yaml, for components run as subprocesses."""
    import yaml

    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return path
