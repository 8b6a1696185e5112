"""docs/reference/configuration.md is generated from the configuration models: it must match them."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_reference_is_current() -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "config_reference.py"), "--check"],
        capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )
    assert check.returncode == 0, check.stderr


def test_every_configuration_key_is_in_the_reference() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    from config_reference import render

    from watchkeeper.plumbing.config import Config

    page = render()
    for section, info in Config.model_fields.items():
        if info.exclude:
            continue
        assert f"`{section}" in page, section
    assert "`windows.max_future`" in page and "`producers.limits.max_label_value_length`" in page
