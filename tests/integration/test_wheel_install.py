"""The wheel installs one top-level package, `watchkeeper` (issue 21): in an environment that already holds
another distribution's `core` (or `schemas`, `agents`, ...), both keep working. Built and installed for real
into a fresh virtualenv that has such a `core`, then the CLI runs a rule unit test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GENERIC = ("core", "schemas", "agents", "sinks", "producers", "reports", "dashboard", "plumbing", "runtime", "bench")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy: an in-tree build would leave build/ and *.egg-info in the checkout (and a later build
    # could pick stale files up from build/).
    src = tmp_path_factory.mktemp("src") / "watchkeeper"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", ".watchkeeper", "test-artifacts", "site", "__pycache__", "data"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
                   check=True, capture_output=True, timeout=600)
    return next(out.glob("watchkeeper-*.whl"))


def test_the_wheel_holds_one_top_level_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith((".dist-info", ".data"))}
    assert tops == {"watchkeeper"}, tops
    for sub in ("core", "schemas", "agents", "sinks", "producers", "plumbing", "runtime", "reports", "dashboard"):
        assert f"watchkeeper/{sub}/__init__.py" in names, sub
    assert any(n.startswith("watchkeeper/dashboard/static/") for n in names), "the dashboard's page"


def test_installed_beside_another_core_package(wheel: Path, tmp_path: Path) -> None:
    env = tmp_path / "venv"
    # The dependencies come from this interpreter's site-packages; the venv's own come first.
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env)
    python = env / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    for name in GENERIC:  # someone else's packages with our folders' names
        (site / name).mkdir()
        (site / name / "__init__.py").write_text(f"OTHER = {name!r}\n")
    # --ignore-installed: this interpreter's own (editable) watchkeeper is visible through the system site
    # packages and must not count as installed; no PYTHONPATH, or a checkout would shadow the wheel.
    env_vars = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--ignore-installed",
                    "-q", str(wheel)], check=True, capture_output=True, timeout=600, env=env_vars)
    run = dict(capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env_vars)
    helped = subprocess.run([str(env / "bin" / "watchkeeper"), "--help"], **run)  # type: ignore[call-overload]
    assert helped.returncode == 0, helped.stderr
    rules = ROOT / "tests" / "rules" / "alerts"
    tested = subprocess.run([str(env / "bin" / "watchkeeper"), "rules", "test", "--semantics", "prometheus2",
                             str(rules / "for_timing.test.yml")], **run)  # type: ignore[call-overload]
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
    others = subprocess.run([str(python), "-c", "import core, schemas, watchkeeper.core; "
                             "print(core.OTHER, schemas.OTHER, watchkeeper.core.__file__)"], **run)  # type: ignore[call-overload]
    assert others.returncode == 0, others.stderr
    assert others.stdout.startswith("core schemas ") and str(site / "watchkeeper" / "core") in others.stdout
