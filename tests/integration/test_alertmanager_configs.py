"""Against the real `amtool` (Debian prometheus-alertmanager): every config of the corpus under
tests/fixtures/alertmanager/corpus that `amtool check-config` accepts loads, every one it rejects is
refused; `watchkeeper routes test` prints what `amtool config routes test` prints (receivers, --tree,
--verify.receivers exit codes) and `routes show` what `amtool config routes` prints."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from core.errors import SourceError
from core.notify.config import load_notify_config_file
from watchkeeper.cli import main

CORPUS = Path(__file__).parents[1] / "fixtures/alertmanager/corpus"
# Real-world configs (Alertmanager's own examples and testdata, ...) are not committed here (see the fixtures'
# README): point WK_AM_CORPUS at a directory of them to run every check below on them too.
EXTRA = Path(os.environ["WK_AM_CORPUS"]) if os.environ.get("WK_AM_CORPUS") else None
FILES = {p.name: p for d in (CORPUS, EXTRA) if d is not None for p in sorted(d.glob("*.yml"))}
AMTOOL = shutil.which("amtool")
pytestmark = pytest.mark.skipif(AMTOOL is None, reason="amtool (Debian prometheus-alertmanager) not installed")


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert AMTOOL is not None
    return subprocess.run([AMTOOL, *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("name", sorted(FILES))
def test_loads_exactly_what_amtool_accepts(name: str) -> None:
    path = FILES[name]
    accepted = amtool("check-config", str(path)).returncode == 0
    try:
        load_notify_config_file(str(path))
        loaded, why = True, ""
    except SourceError as exc:
        loaded, why = False, str(exc)
    assert loaded == accepted, f"amtool {'accepts' if accepted else 'rejects'} {name}; watchkeeper: {why or 'loads'}"


ROUTE_CASES = {
    "wk-routes.yml": [
        [], ["severity=critical", "env=prod"], ["severity=critical", "env=prod", "team=sandbox"],
        ["severity=critical", "env=prod", "service=postgres"], ["service=mysql-replica", "severity=warning"],
        ["service=mysql", "severity=warning", "alertname=TestAlert"], ["service=mysql", "severity=info"],
        ["service=web"], ["service=web", "zone=eu", "instance=a"], ["service=api", "zone=eu"],
        ["service=api", "zone=us", "severity=critical", "env=staging"], ['service="web"', "zone=eu"],
    ],
    "am-simple.yml": [
        ["service=database"], ["service=database", "owner=team-X"], ["service=database", "owner=team-Y"],
        ["service=files", "severity=critical"], ["service=foo1", "severity=critical"], ["service=foo3"],
        ["service=baz", "severity=warning"],
    ],
    "am-conf.good.yml": [["job=foo"], ["owner=team-X"], []],
    "wk-helm-style.yml": [["alertname=Watchdog"], ["alertname=KubePodCrashLooping", "namespace=kube-system"]],
    "wk-time-intervals.yml": [["team=db"], ["team=web"], ["team=ops"]],
}


@pytest.mark.parametrize(("name", "labels"),
                         [(n, ls) for n, cases in ROUTE_CASES.items() if n in FILES for ls in cases])
def test_routes_test_prints_what_amtool_prints(name: str, labels: list[str],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = str(FILES[name])
    want = amtool("config", "routes", "test", f"--config.file={path}", "--tree", *labels)
    assert want.returncode == 0, want.stderr
    assert main(["routes", "test", "--config", path, "--tree", *labels]) == 0
    assert capsys.readouterr().out == want.stdout
    receivers = want.stdout.splitlines()[-1]
    for verify in (receivers, receivers + ",nobody"):  # exit 0 when they match, 1 and a warning when not
        want = amtool("config", "routes", "test", f"--config.file={path}", f"--verify.receivers={verify}", *labels)
        got = main(["routes", "test", "--config", path, "--verify-receivers", verify, *labels])
        assert (got, capsys.readouterr().out) == (want.returncode, want.stdout)


@pytest.mark.parametrize("name", sorted(n for n in ROUTE_CASES if n in FILES))
def test_routes_show_prints_what_amtool_prints(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(FILES[name])
    want = amtool("config", "routes", f"--config.file={path}")
    assert main(["routes", "show", "--config", path]) == 0
    assert capsys.readouterr().out == want.stdout


def test_labels_that_are_not_key_value_fail_like_amtool(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(CORPUS / "wk-routes.yml")
    assert amtool("config", "routes", "test", f"--config.file={path}", "service=~web").returncode == 1
    assert main(["routes", "test", "--config", path, "service=~web"]) == 1
    assert "labels must be specified as key=value pairs" in capsys.readouterr().err


@pytest.mark.parametrize(("target", "source", "says"), [
    (["alertname=KubePodCrashLooping", "namespace=a", "severity=warning"],
     ["alertname=KubePodCrashLooping", "namespace=a", "severity=critical"], "inhibited by inhibit_rules[0]"),
    (["alertname=KubePodCrashLooping", "namespace=a", "severity=warning"],
     ["alertname=KubePodCrashLooping", "namespace=b", "severity=critical"], "not inhibited"),  # equal differs
    (["alertname=X", "namespace=a", "severity=info"], ["alertname=InfoInhibitor", "namespace=a"],
     "inhibited by inhibit_rules[1]"),
])
def test_inhibited_by(target: list[str], source: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(CORPUS / "wk-helm-style.yml")
    assert main(["routes", "test", "--config", path, *target, "--inhibited-by", *source]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "null" and out[1].startswith(says)
