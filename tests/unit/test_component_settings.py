"""Each component receives only its own settings (issue 21, Prometheus' `ManagerOptions`): the commands pick
them out of `watchkeeper.yaml`'s `Config`, and the agents, sinks, producers, dashboard and reports never see the
whole.

The first test reads the sources (import-linter checks modules, not the names taken from one); the others
check that each picker hands a component what the component used to read out of the whole `Config` itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from watchkeeper.commands.dashboard import dashboard_settings
from watchkeeper.commands.produce import producer_settings, sender_settings
from watchkeeper.commands.sink import clickhouse_sink_settings, notify_sink_settings
from watchkeeper.commands.worker import (
    anomaly_agent_settings,
    rules_agent_settings,
    window_agent_settings,
    worker_settings,
)
from watchkeeper.plumbing.config import Config

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = ("agents", "sinks", "producers", "dashboard", "reports")
WHOLE = {"Config", "load_config"}


def whole_config_uses(path: Path, root: Path = ROOT) -> list[str]:
    """`file:line what` for each import of the whole configuration (or of its module) in `path`."""
    found = []
    where = path.relative_to(root)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module == "watchkeeper.plumbing.config":
            found += [f"{where}:{node.lineno} imports {a.name}" for a in node.names if a.name in WHOLE]
        elif isinstance(node, ast.ImportFrom) and node.module == "watchkeeper.plumbing":
            found += [f"{where}:{node.lineno} imports plumbing.config"
                      for a in node.names if a.name == "config"]
        elif isinstance(node, ast.Import):
            found += [f"{where}:{node.lineno} imports {a.name}"
                      for a in node.names if a.name == "watchkeeper.plumbing.config"]
    return found


def test_components_import_section_models_only() -> None:
    files = [p for folder in COMPONENTS for p in sorted((ROOT / folder).rglob("*.py"))]
    assert {p.relative_to(ROOT).parts[0] for p in files} == set(COMPONENTS)  # every folder was found
    assert len(files) > 50
    assert [use for p in files for use in whole_config_uses(p)] == []


def test_the_check_sees_an_import_of_the_whole_config(tmp_path: Path) -> None:
    bad = tmp_path / "sinks" / "bad.py"
    bad.parent.mkdir()
    bad.write_text("from watchkeeper.plumbing.config import Config, KafkaConfig\nimport watchkeeper.plumbing.config\n"
                   "from watchkeeper.plumbing import config\n")
    assert whole_config_uses(bad, tmp_path) == ["sinks/bad.py:1 imports Config",
                                                 "sinks/bad.py:2 imports watchkeeper.plumbing.config",
                                                 "sinks/bad.py:3 imports plumbing.config"]


def _config(tmp_path: Path, **sections: object) -> Config:
    cfg = Config.model_validate(sections)
    cfg.base_dir = str(tmp_path)
    return cfg


def test_clickhouse_sink_settings() -> None:
    cfg = Config.model_validate({"worker": {"app_id": "wk2"}, "clickhouse": {"batch_rows": 7, "flush_seconds": 0.5},
                                 "kafka": {"topics": {"samples": "s2"}}})
    s = clickhouse_sink_settings(cfg)
    assert (s.group_id, s.batch_rows, s.flush_seconds, s.kafka.topics.samples) == ("wk2-clickhouse", 7, 0.5, "s2")


def test_notify_sink_settings_resolve_the_alertmanager_file_against_the_config_file(tmp_path: Path) -> None:
    cfg = _config(tmp_path, data_dir="state", worker={"app_id": "wk2"},
                  notify={"alertmanager_config": "am/alertmanager.yml", "parallel_deliveries": 3},
                  clickhouse={"dsn": "http://127.0.0.1:18123/db"})
    s = notify_sink_settings(cfg)
    assert s.alertmanager_file == tmp_path / "am" / "alertmanager.yml"
    assert (s.group_id, s.notify.parallel_deliveries, s.data_path) == ("wk2-notify", 3, tmp_path / "state")
    assert s.samples_dsn == "http://127.0.0.1:18123/db"
    assert notify_sink_settings(_config(tmp_path)).alertmanager_file is None


@pytest.mark.parametrize(("spool_dir", "expected"), [("", "data/spool"), ("elsewhere", "elsewhere"),
                                                     ("/abs/spool", "/abs/spool")])
def test_sender_settings_spool_dir(tmp_path: Path, spool_dir: str, expected: str) -> None:
    cfg = _config(tmp_path, data_dir="data", producers={"spool": {"dir": spool_dir, "max_bytes": 4096}})
    s = sender_settings(cfg)
    assert s.spool_dir == tmp_path / expected
    assert s.spool.max_bytes == 4096


def test_producer_settings_carry_the_ingest_limits_with_the_windows_future_bound(tmp_path: Path) -> None:
    cfg = _config(tmp_path, windows={"max_future": 60.0}, producers={"limits": {"max_series_per_request": 5}})
    s = producer_settings(cfg)
    assert (s.limits.max_future, s.limits.max_series_per_request) == (60.0, 5)
    assert s.producers is cfg.producers


def test_dashboard_settings_read_the_configured_clickhouse_unless_told(tmp_path: Path) -> None:
    cfg = _config(tmp_path, clickhouse={"http_port": 18124, "http_password": "pw"}, dashboard={"refresh_seconds": 3})
    s = dashboard_settings(cfg)
    assert s.reader_dsn == cfg.clickhouse_reader_dsn == "http://default:pw@127.0.0.1:18124"
    assert (s.dashboard.refresh_seconds, s.data_path) == (3, cfg.data_path)
    assert dashboard_settings(cfg, "http://127.0.0.1:9/x").reader_dsn == "http://127.0.0.1:9/x"


def test_window_agent_settings(tmp_path: Path) -> None:
    cfg = _config(tmp_path, kafka={"bootstrap": "127.0.0.1:19092", "topics": {"samples": "s2"}},
                  windows={"width": 30.0, "batch_messages": 9})
    s = window_agent_settings(cfg)
    assert (s.kafka.bootstrap, s.kafka.topics.samples, s.windows.width, s.windows.batch_messages) == (
        "127.0.0.1:19092", "s2", 30.0, 9)


def test_rules_agent_settings_resolve_the_rule_files_against_the_config_file(tmp_path: Path) -> None:
    cfg = _config(tmp_path, data_dir="state", worker={"app_id": "wk2"}, windows={"allowed_lateness": 2.0},
                  rules={"files": ["rules/a.yml", "/abs/b.yml"], "slo_specs": ["slo/api.yml"], "shards": 3,
                         "evaluation": "full"})
    s = rules_agent_settings(cfg)
    assert s.rule_files == (tmp_path / "rules" / "a.yml", Path("/abs/b.yml"))
    assert s.slo_specs == (tmp_path / "slo" / "api.yml",)
    assert (s.app_id, s.data_path, s.rules.shards, s.rules.evaluation, s.windows.allowed_lateness) == (
        "wk2", tmp_path / "state", 3, "full", 2.0)
    bare = rules_agent_settings(_config(tmp_path))
    assert (bare.rule_files, bare.slo_specs) == ((), ())


def test_anomaly_agent_settings_resolve_the_rule_files_against_the_config_file(tmp_path: Path) -> None:
    cfg = _config(tmp_path, anomaly={"files": ["anomaly.yml"], "batch_messages": 11},
                  kafka={"topics": {"alerts": "a2"}})
    s = anomaly_agent_settings(cfg)
    assert s.rule_files == (tmp_path / "anomaly.yml",)
    assert (s.anomaly.batch_messages, s.kafka.topics.alerts) == (11, "a2")


def test_worker_settings_hold_the_settings_of_the_agents_asked_for(tmp_path: Path) -> None:
    cfg = _config(tmp_path, data_dir="state", worker={"app_id": "wk2", "web_port": 16066},
                  rules={"files": ["r.yml"]})
    every = worker_settings(cfg)
    assert (every.worker.app_id, every.worker.web_port, every.data_path) == ("wk2", 16066, tmp_path / "state")
    assert every.windows == window_agent_settings(cfg)
    assert every.rules == rules_agent_settings(cfg)
    assert every.anomaly == anomaly_agent_settings(cfg)
    windows_only = worker_settings(cfg, agents=("windows",))
    assert (windows_only.windows, windows_only.rules, windows_only.anomaly) == (window_agent_settings(cfg), None, None)
    none = worker_settings(cfg, agents=())
    assert (none.windows, none.rules, none.anomaly) == (None, None, None)
    with pytest.raises(ValueError, match=r"unknown agents \['window'\]: the worker runs windows, rules, anomaly"):
        worker_settings(cfg, agents=("window",))
