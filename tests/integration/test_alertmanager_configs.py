"""Against the real `amtool` (Debian prometheus-alertmanager): every config of the corpus under
tests/fixtures/alertmanager/corpus that `amtool check-config` accepts loads, every one it rejects is
refused; `watchkeeper routes test` prints what `amtool config routes test` prints (receivers, --tree,
--verify.receivers exit codes) and `routes show` what `amtool config routes` prints."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from watchkeeper.cli import main
from watchkeeper.core.errors import SourceError
from watchkeeper.core.notify.config import load_notify_config_file
from watchkeeper.core.yaml_source import GoYamlLoader

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


# Keys Alertmanager added after v0.25 (the amtool Debian ships) that Watchkeeper loads: prometheus/common's
# `proxy_from_environment` and `no_proxy`, the `*_file` secrets, a webhook's and Slack's `timeout`, Telegram's
# `message_thread_id`, Discord's `content`/`username`/`avatar_url`, Pushover's `monospace`, Teams.
NEWER_THAN_AMTOOL = {
    "proxy_from_environment", "no_proxy", "url_file", "timeout", "bot_token_file", "message_thread_id",
    "webhook_url_file", "content", "username", "avatar_url", "message_text", "monospace", "user_key_file",
    "token_file", "msteams_configs", "msteamsv2_configs",
}


def _without(data: Any, keys: set[str]) -> Any:
    if isinstance(data, dict):
        return {k: _without(v, keys) for k, v in data.items() if k not in keys}
    if isinstance(data, list):
        return [_without(v, keys) for v in data]
    return data


def amtool_accepts(path: Path, tmp_path: Path) -> bool:
    """amtool's verdict; where it refuses only keys newer than itself, its verdict on the file without them."""
    for attempt in range(3):
        got = amtool("check-config", str(path))
        newer = set(re.findall(r"field (\w+) not found", got.stdout + got.stderr))
        if got.returncode == 0 or not newer or not newer <= NEWER_THAN_AMTOOL:
            return got.returncode == 0
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=GoYamlLoader)
        path = tmp_path / f"without-newer-{attempt}.yml"
        path.write_text(yaml.safe_dump(_without(data, newer)), encoding="utf-8")
    return False


def test_a_key_newer_than_amtool_is_judged_without_it(tmp_path: Path) -> None:
    path = tmp_path / "am.yml"
    path.write_text("global:\n  http_config: {proxy_from_environment: true}\nroute: {receiver: r}\n"
                    "receivers: [{name: r, webhook_configs: [{url: 'ftp://127.0.0.1/'}]}]\n", encoding="utf-8")
    assert amtool("check-config", str(path)).returncode == 1
    assert not amtool_accepts(path, tmp_path)  # without the newer key, amtool still refuses the ftp URL
    path.write_text(path.read_text(encoding="utf-8").replace("ftp:", "http:"), encoding="utf-8")
    assert amtool_accepts(path, tmp_path)
    load_notify_config_file(str(path))


URLS = [
    "not a url", "${SLACK_WEBHOOK_URL}", "", "url", "127.0.0.1:9093", "localhost:9093", "http:127.0.0.1", ":9093",
    "a b:c", "http://a b/", "http://[::1/", "http://127.0.0.1/\x01", "http://u{s@127.0.0.1/", "http://127.0.0.1/#%g",
    "http://127.0.0.1 :9/", "HTTPS://h/", "http://[::1]:9/hook?a=%zz", "http://:80/", "http://h:/", "//h/x",
    "http://h/a b", "http://h%41/", "http://h%c3%a9/", "https://user:p%zz@h/", "http://h:8080x/", "http://h/é",
    "http://é/", "http://h|x/", "http://[::1]x/", "mailto:a@b", "http://h?x", "http://h#f", "1http://h/",
    "ftp://127.0.0.1/", "http:///hook",
]


@pytest.mark.parametrize("url", URLS)
def test_a_url_is_refused_with_amtools_message(url: str, tmp_path: Path) -> None:
    """A webhook's `url` (a config.URL, like every URL field): amtool's verdict and message."""
    path = tmp_path / "am.yml"
    hook = json.dumps(url)
    path.write_text(f"route: {{receiver: r}}\nreceivers:\n- name: r\n  webhook_configs: [{{url: {hook}}}]\n",
                    encoding="utf-8")
    got = amtool("check-config", str(path))
    want = "" if got.returncode == 0 else got.stdout.split("FAILED: ")[1].splitlines()[0].strip()
    try:
        load_notify_config_file(str(path))
        message = ""
    except SourceError as exc:
        assert exc.line == 4
        message = exc.message.removeprefix("Value error, ")
    assert message == want


SMARTHOSTS = ["localhost", "h:", "[::1]:25", "a:b:25", ":25", "", "[::1]", "h]:25", "[h:25", "[::1]x:25",
              "[::1]:25:1", "a[b:25", "${SMTP_HOST}", "127.0.0.1:25", "smtp.example.org:587", 25]


@pytest.mark.parametrize("smarthost", SMARTHOSTS)
def test_a_smarthost_is_refused_with_amtools_message(smarthost: str | int, tmp_path: Path) -> None:
    """`smtp_smarthost` (Alertmanager's HostPort): amtool's verdict and message."""
    path = tmp_path / "am.yml"
    path.write_text(f"global:\n  smtp_smarthost: {json.dumps(smarthost)}\nroute: {{receiver: r}}\n"
                    "receivers: [{name: r}]\n", encoding="utf-8")
    got = amtool("check-config", str(path))
    want = "" if got.returncode == 0 else got.stdout.split("FAILED: ")[1].splitlines()[0].strip()
    try:
        load_notify_config_file(str(path))
        message = ""
    except SourceError as exc:
        assert (exc.line, exc.field) == (2, "global.smtp_smarthost")
        message = exc.message.removeprefix("Value error, ")
    assert message == want


_R = "route: {receiver: r%s}\nreceivers:\n- name: r\n%s"
_HOOK = "  webhook_configs: [{url: 'http://127.0.0.1:9/'%s}]\n"
_MAIL = "global: {smtp_smarthost: '127.0.0.1:25', smtp_from: a@example.org}\n"
_SLACK = "global: {slack_api_url: 'http://127.0.0.1:9/'}\n"
# Small configs written here, one rule each, that amtool accepts or refuses: the loader must agree.
SMALL = {
    "group-wait-number": _R % (", group_wait: 30", ""), "group-wait-zero": _R % (", group_wait: 0", ""),
    "repeat-zero": _R % (", repeat_interval: 0s", ""), "group-interval-zero": _R % (", group_interval: 0s", ""),
    "resolve-number": "global: {resolve_timeout: 300}\n" + _R % ("", ""),
    "root-continue": _R % (", continue: true", ""), "group-by-bad": _R % (", group_by: ['a-b']", ""),
    "group-by-mixed": _R % (", group_by: [a, '...']", ""),
    "match-bad-name": "route: {receiver: r, routes: [{receiver: r, match: {'a-b': c}}]}\nreceivers:\n- name: r\n",
    "equal-bad": _R % ("", "") + "inhibit_rules: [{source_matchers: [a=b], target_matchers: [c=d], equal: ['a-b']}]\n",
    "send-resolved-string": _R % ("", _HOOK % ", send_resolved: 'true'"),
    "bearer-and-basic": _R % ("", _HOOK % ", http_config: {bearer_token: x, basic_auth: {username: u}}"),
    "authorization-basic": _R % ("", _HOOK % ", http_config: {authorization: {type: Basic, credentials: x}}"),
    "oauth2-no-secret": _R % ("", _HOOK % ", http_config: {oauth2: {client_id: c, token_url: 'http://t/'}}"),
    "oauth2-ok": _R % ("", _HOOK % ", http_config: {oauth2: {client_id: c, client_secret: s, token_url: 'http://t/'}}"),
    "tls-unknown-key": _R % ("", _HOOK % ", http_config: {tls_config: {bogus: 1}}"),
    "pagerduty-number-detail": _R % ("", "  pagerduty_configs: [{routing_key: k, details: {a: 1}}]\n"),
    "slack-field-no-value": _SLACK + _R % ("", "  slack_configs: [{fields: [{title: t}]}]\n"),
    "slack-action-no-text": _SLACK + _R % ("", "  slack_configs: [{actions: [{type: button}]}]\n"),
    "slack-action-ok": _SLACK + _R % ("", "  slack_configs: [{actions: [{type: button, text: t, url: 'http://x/'}]}]\n"),
    "email-empty-to": _MAIL + _R % ("", "  email_configs: [{to: ''}]\n"),
    "email-tls-unknown-key": _MAIL + _R % ("", "  email_configs: [{to: x@example.org, tls_config: {bogus: 1}}]\n"),
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_a_small_config_loads_exactly_when_amtool_accepts_it(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.yml"
    path.write_text(SMALL[name], encoding="utf-8")
    accepted = amtool("check-config", str(path)).returncode == 0
    try:
        load_notify_config_file(str(path))
        loaded, why = True, ""
    except SourceError as exc:
        loaded, why = False, str(exc)
    assert loaded == accepted, f"amtool {'accepts' if accepted else 'rejects'} {name}; watchkeeper: {why or 'loads'}"


@pytest.mark.parametrize("name", sorted(FILES))
def test_loads_exactly_what_amtool_accepts(name: str, tmp_path: Path) -> None:
    path = FILES[name]
    accepted = amtool_accepts(path, tmp_path)
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
    "wk-match-scalars.yml": [["code=500", "ratio=2.50"], ["code=500", "ratio=2.5"], ["canary=true", "shard=0x1F"],
                             ["canary=True", "shard=0x1F"], ["team="], ["code=500", "ratio=2.50", "canary=true",
                                                                          "shard=0x1F"]],
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
