"""Secrets never leave the configuration (issue 16).

Given receivers whose URLs, keys, passwords and tokens are secrets, and deliveries that all fail (closed loopback
ports, a peer that echoes what it got, a hook that prints its token), expect the literal secret strings nowhere:
not in the notification sink's log, its state file, the records on `wk.notifications`, the ClickHouse
`notifications` table, nor the dashboard; the errors still say where the delivery went. Given a ClickHouse DSN
with a password and ClickHouse down, expect the password nowhere in the dashboard's JSON, `/metrics`, its log
or its start-up line. And the masking functions themselves, case by case.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests.conftest import write_config
from tests.integration.kafka_io import consume_until, produce
from watchkeeper.commands.dashboard import dashboard_settings
from watchkeeper.commands.sink import clickhouse_sink_settings
from watchkeeper.core.secrets import SECRET, SecretRedactor, is_secret_name, mask_dsn, mask_url, mask_urls_in_text
from watchkeeper.dashboard import create_dashboard_app
from watchkeeper.plumbing.broker import free_port
from watchkeeper.plumbing.config import Config
from watchkeeper.plumbing.log_filters import KNOWN_SECRETS, install_secret_redaction
from watchkeeper.schemas.alerts import AlertEvent
from watchkeeper.schemas.codec import encode

# Each secret is a literal grepped for afterwards; none is a substring of anything else the test writes.
WEBHOOK_PATH_TOKEN = "W3bh00kPathT0ken"
QUERY_TOKEN = "Qu3ryT0kenValue7"
USERINFO_PASSWORD = "UsErInf0Passw0rd"
BEARER = "B3arerCr3dentialZ"
SLACK_TOKEN = "SlackT0kenXXXXXXXXXXXXXX"
PD_KEY = "PdR0utingKey0123456789abcdef"
SMTP_PASSWORD = "SmtpPassw0rd-9"
HOOK_TOKEN = "H00kEnvT0ken-4"
CH_PASSWORD = "ChPassw0rdXYZ-1"
SECRETS = (WEBHOOK_PATH_TOKEN, QUERY_TOKEN, USERINFO_PASSWORD, BEARER, SLACK_TOKEN, PD_KEY, SMTP_PASSWORD,
           HOOK_TOKEN, CH_PASSWORD)

AM_CONFIG = """
global:
  smtp_smarthost: "127.0.0.1:{closed}"
  smtp_from: wk@localhost
  smtp_auth_username: wk
  smtp_auth_password: "{smtp}"
  smtp_require_tls: false
route: {{receiver: team, group_wait: 0s, group_interval: 1s, repeat_interval: 1h}}
receivers:
  - name: team
    webhook_configs:
      - url: "http://127.0.0.1:{closed}/hook/{path_token}?token={query_token}"
      - url: "http://alice:{userinfo}@127.0.0.1:{closed}/in"
      - url: "{echo}/echo-auth"
        http_config: {{authorization: {{credentials: "{bearer}"}}}}
    slack_configs: [{{api_url: "http://127.0.0.1:{closed}/services/T00000000/B00000000/{slack}"}}]
    pagerduty_configs: [{{routing_key: "{pd}", url: "{echo}/pd"}}]
    email_configs: [{{to: ops@localhost}}]
    command_configs:
      - command: ["{python}", "-c", "import os, sys; sys.stderr.write('token ' + os.environ['API_TOKEN']); sys.exit(3)"]
        env: {{API_TOKEN: "{hook}"}}
"""
INTEGRATIONS = {"webhook[0]", "webhook[1]", "webhook[2]", "slack[0]", "pagerduty[0]", "email[0]", "command[0]"}


def assert_clean(text: str | bytes, where: str) -> None:
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    leaked = [s for s in SECRETS if s in raw]
    assert not leaked, f"{where} holds {leaked}"


@pytest.fixture
async def echo_server() -> AsyncIterator[str]:
    """A peer that answers 400 quoting what it got (body and Authorization), as some APIs do."""

    async def echo(request: web.Request) -> web.Response:
        body = await request.text()
        return web.Response(status=400, text=f"bad request {request.headers.get('Authorization')} {body}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_failing_deliveries_leak_no_secret(wk_config: Config, tmp_path: Path, ch_dsn: str,
                                                 echo_server: str) -> None:
    closed = free_port()  # nothing listens there
    (tmp_path / "alertmanager.yml").write_text(AM_CONFIG.format(
        closed=closed, smtp=SMTP_PASSWORD, path_token=WEBHOOK_PATH_TOKEN, query_token=QUERY_TOKEN,
        userinfo=USERINFO_PASSWORD, echo=echo_server, bearer=BEARER, slack=SLACK_TOKEN, pd=PD_KEY,
        python=sys.executable, hook=HOOK_TOKEN))
    wk_config.notify.alertmanager_config = str(tmp_path / "alertmanager.yml")
    wk_config.notify.retry_initial_seconds = 0.2
    wk_config.notify.retry_max_seconds = 0.5
    cfg_path = write_config(wk_config, tmp_path / "watchkeeper.yaml")
    log_path = tmp_path / "notify-sink.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "watchkeeper", "sink", "notify", "--config", str(cfg_path)],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        now = asyncio.get_running_loop().time()
        event = AlertEvent(fingerprint="00000000000000aa", rule="DiskFull", state="firing", severity="high",
                           labels={"alertname": "DiskFull"}, starts_at=1_790_000_000.0, event_time=1_790_000_000.0)
        await produce(wk_config.kafka.bootstrap, wk_config.kafka.topics.alerts, [(b"aa", encode(event))])

        def every_integration_failed(recs: list) -> bool:  # type: ignore[type-arg]
            seen: dict[str, int] = {}
            for r in recs:
                rec = orjson.loads(r.value)
                if rec["status"] in ("retrying", "failed"):
                    seen[rec["integration"]] = seen.get(rec["integration"], 0) + 1
            return all(seen.get(i, 0) >= 1 for i in INTEGRATIONS)  # a 4xx is final: one record

        records = await consume_until(wk_config.kafka.bootstrap, wk_config.kafka.topics.notifications,
                                      every_integration_failed, timeout=60)
        assert every_integration_failed(records), (sorted({orjson.loads(r.value)["integration"] for r in records}),
                                                   asyncio.get_running_loop().time() - now)
    finally:
        proc.terminate()
        proc.wait(30)
    errors = {}
    for r in records:
        assert_clean(r.value, "a record on wk.notifications")
        rec = orjson.loads(r.value)
        errors.setdefault(rec["integration"], rec["error"])
    # The errors still say what failed and where.
    assert f"127.0.0.1:{closed}/{SECRET}" in errors["webhook[0]"], errors["webhook[0]"]
    assert f"alice:{SECRET}@127.0.0.1:{closed}" in errors["webhook[1]"], errors["webhook[1]"]
    assert "HTTP 400" in errors["webhook[2]"] and "Bearer <secret>" in errors["webhook[2]"], errors["webhook[2]"]
    assert f"127.0.0.1:{closed}/{SECRET}" in errors["slack[0]"]
    assert "HTTP 400" in errors["pagerduty[0]"] and SECRET in errors["pagerduty[0]"], errors["pagerduty[0]"]
    assert "exited with 3: token <secret>" in errors["command[0]"], errors["command[0]"]
    assert f"SMTP to 127.0.0.1:{closed}" in errors["email[0]"]
    log_text = log_path.read_text()
    assert "attempt 1 failed" in log_text
    assert_clean(log_text, "the notification sink's log")
    for f in (wk_config.data_path / "notify").iterdir():
        assert_clean(f.read_bytes(), f"the sink's state file {f.name}")

    # The ClickHouse sink stores the records: the `notifications` table holds no secret either.
    from watchkeeper.sinks.clickhouse_sink import ClickHouse, ClickHouseSink

    wk_config.clickhouse.dsn = ch_dsn
    wk_config.clickhouse.flush_seconds = 0.2
    ch = ClickHouse(ch_dsn)
    await ch.open()
    stop = asyncio.Event()
    sink = asyncio.create_task(ClickHouseSink(clickhouse_sink_settings(wk_config), ch).run(stop))
    try:
        rows: list[tuple[str, str, str]] = []
        for _ in range(200):
            rows = ch.writer.query("SELECT integration, status, error FROM notifications").result_rows
            if len(rows) >= len(records):
                break
            await asyncio.sleep(0.2)
        assert len(rows) >= len(records) and {r[0] for r in rows} >= INTEGRATIONS
        assert_clean(repr(rows), "the ClickHouse notifications table")

        # The dashboard on that ClickHouse: its JSON and /metrics neither.
        runner = web.AppRunner(create_dashboard_app(dashboard_settings(wk_config, ch_dsn)))
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with aiohttp.ClientSession() as http:
                for path in ("/api/overview", "/metrics", "/api/series"):
                    async with http.get(f"http://127.0.0.1:{port}{path}") as resp:
                        assert resp.status == 200, path
                        assert_clean(await resp.read(), f"the dashboard's {path}")
        finally:
            await runner.cleanup()
    finally:
        stop.set()
        await asyncio.wait_for(sink, 30)
        await ch.close()


@pytest.fixture
def redacting_logs() -> None:
    install_secret_redaction()


async def test_clickhouse_down_with_a_password_in_the_dsn(wk_config: Config, caplog: pytest.LogCaptureFixture,
                                                          redacting_logs: None) -> None:
    dsn = f"http://default:{CH_PASSWORD}@127.0.0.1:{free_port()}/default"
    runner = web.AppRunner(create_dashboard_app(dashboard_settings(wk_config, dsn)))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/api/overview") as resp:
                body = await resp.json()
            assert body["clickhouse"] == "error" and len(body["errors"]) == 3
            assert "http://default:<secret>@127.0.0.1" in body["errors"][0]
            assert_clean(orjson.dumps(body), "/api/overview")
            for path in ("/api/series?match=up", "/api/chart?id=00000000000000aa", "/metrics", "/healthz"):
                async with http.get(f"http://127.0.0.1:{port}{path}") as resp:
                    assert_clean(await resp.read(), path)
    finally:
        await runner.cleanup()
    assert "dashboard query ingest failed" in caplog.text
    assert_clean(caplog.text, "the dashboard's log")


def test_startup_lines_and_cli_errors_hide_the_dsn_password(wk_config: Config, tmp_path: Path) -> None:
    cfg = write_config(wk_config, tmp_path / "watchkeeper.yaml")
    dsn = f"http://default:{CH_PASSWORD}@127.0.0.1:{free_port()}/default"
    env = {**os.environ, "WK_CLICKHOUSE_DSN": dsn, "PYTHONUNBUFFERED": "1"}
    dash = subprocess.Popen([sys.executable, "-m", "watchkeeper", "dashboard", "--port", str(free_port()),
                             "--config", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    assert dash.stdout is not None
    first = dash.stdout.readline().decode()
    dash.terminate()
    rest, _ = dash.communicate(timeout=30)
    assert first.startswith("dashboard on http://127.0.0.1:") and "reading http://default:<secret>@127.0.0.1" in first
    assert_clean(first + rest.decode(), "`watchkeeper dashboard` output")
    sql = subprocess.run([sys.executable, "-m", "watchkeeper", "sql", "--config", str(cfg), "SELECT 1"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert sql.returncode != 0
    assert_clean(sql.stdout + sql.stderr, "`watchkeeper sql` output")
    helps = subprocess.run([sys.executable, "-m", "watchkeeper", "dashboard", "--help"], capture_output=True,
                           text=True, env=env, timeout=60)
    assert helps.returncode == 0 and "WK_DASHBOARD_TOKEN" in helps.stdout
    assert_clean(helps.stdout, "`watchkeeper dashboard --help`")


def test_log_records_and_tracebacks_are_redacted(caplog: pytest.LogCaptureFixture, redacting_logs: None) -> None:
    KNOWN_SECRETS.add("Kn0wnSecretValue")
    log = logging.getLogger("wk.test.secrets")
    log.warning("connecting with %s to %s", "Kn0wnSecretValue", f"http://u:{CH_PASSWORD}@127.0.0.1:1/db")
    try:
        raise RuntimeError("boom with Kn0wnSecretValue inside")
    except RuntimeError:
        log.exception("failed")
    assert "connecting with <secret> to http://u:<secret>@127.0.0.1:1/db" in caplog.text
    assert "boom with <secret> inside" in caplog.text
    assert "Kn0wnSecretValue" not in caplog.text and CH_PASSWORD not in caplog.text


@pytest.mark.parametrize(("url", "masked"), [
    ("https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
     "https://hooks.slack.com/services/<secret>/<secret>/<secret>"),
    ("http://default:pw@clickhouse:8123/default", "http://default:<secret>@clickhouse:8123/default"),
    ("https://example.com/hook?token=abc&team=ops", "https://example.com/hook?token=<secret>&team=ops"),
    ("https://example.com/h?api_key=1&X-Amz-Signature=2&sig=3&page=4",
     "https://example.com/h?api_key=<secret>&X-Amz-Signature=<secret>&sig=<secret>&page=4"),
    ("https://discord.com/api/webhooks/123456/abcDEF123456789012345xyz",
     "https://discord.com/api/webhooks/<secret>/<secret>"),
    ("http://127.0.0.1:9093/api/v2/alerts", "http://127.0.0.1:9093/api/v2/alerts"),  # nothing secret in it
    ("chdb:///var/lib/wk/clickhouse?database=wk", "chdb:///var/lib/wk/clickhouse?database=wk"),
    ("not a url", "not a url"),
])
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_a_secret_url_shows_only_its_host() -> None:
    assert mask_url("http://127.0.0.1:9/hook/abc?token=x", hide_path=True) == "http://127.0.0.1:9/<secret>"
    assert mask_url("http://127.0.0.1:9", hide_path=True) == "http://127.0.0.1:9"
    assert mask_dsn("http://u:p@h:8123/db") == "http://u:<secret>@h:8123/db"


def test_redactor_finds_secrets_as_written_and_url_encoded() -> None:
    r = SecretRedactor()
    r.add("p@ss word/1")
    r.add("abc")  # too short to search for in free text
    r.add_url("http://127.0.0.1:9/hook/mytoken?token=T0PSECRETX", hide_path=True)
    text = ("p@ss word/1 and p%40ss%20word%2F1 and p%40ss+word%2F1; abc; "
            "posting to http://127.0.0.1:9/hook/mytoken?token=T0PSECRETX failed; T0PSECRETX; /hook/mytoken")
    assert r.redact(text) == ("<secret> and <secret> and <secret>; abc; posting to http://127.0.0.1:9/<secret> "
                              "failed; <secret>; <secret>")
    assert mask_urls_in_text("see http://a:b@h/x, then") == "see http://a:<secret>@h/x, then"


@pytest.mark.parametrize(("name", "secret"), [
    ("password", True), ("auth_password", True), ("smtp_auth_password", True), ("routing_key", True),
    ("token", True), ("bearer_token", True), ("credentials", True), ("X-Api-Key", True), ("API_TOKEN", True),
    ("auth_username", False), ("url", False), ("channel", False), ("tokens_per_second", False),
])
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret
