"""Given configuration files with mistakes, expect errors naming file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchkeeper.plumbing.config import load_config
from watchkeeper.plumbing.errors import ConfigError


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WK_CLICKHOUSE_DSN", raising=False)
    cfg = load_config()
    assert cfg.kafka.topics.samples == "wk.samples"
    assert cfg.clickhouse_dsn == f"chdb://{tmp_path / '.watchkeeper' / 'clickhouse'}"


def test_unknown_field_names_file_line_and_field(tmp_path: Path) -> None:
    f = tmp_path / "watchkeeper.yaml"
    f.write_text("kafka:\n  bootstrap: x:1\nwindows:\n  width: 10\n  lateness: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(f))
    assert str(err.value).startswith(f"{f}:5: windows.lateness:")


def test_bad_value_names_line(tmp_path: Path) -> None:
    f = tmp_path / "watchkeeper.yaml"
    f.write_text("producers:\n  system:\n    interval: -1\n")
    with pytest.raises(ConfigError, match=r":3: producers.system.interval: Input should be greater than 0"):
        load_config(str(f))


def test_bad_yaml_names_line(tmp_path: Path) -> None:
    f = tmp_path / "watchkeeper.yaml"
    f.write_text("kafka:\n  bootstrap: [\n")
    with pytest.raises(ConfigError, match=r"watchkeeper.yaml:3: \(file\): invalid YAML"):
        load_config(str(f))


def test_bad_probe_regex_names_line_and_field(tmp_path: Path) -> None:
    f = tmp_path / "watchkeeper.yaml"
    f.write_text("producers:\n  probe:\n    targets:\n      - url: http://127.0.0.1:8080/\n"
                 "        body_match: 'ok('\n")
    with pytest.raises(ConfigError, match=r"watchkeeper.yaml:5: producers.probe.targets.0.body_match: .*not a valid "
                       r"regular expression"):
        load_config(str(f))
