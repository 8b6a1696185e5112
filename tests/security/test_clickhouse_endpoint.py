"""Attacks on the embedded read-only ClickHouse HTTP endpoint (issue 16), and the uses that must keep working.

The endpoint is started as `watchkeeper up` starts it (`serve_query_endpoint` on a real chDB, a real
aiohttp server on a free loopback port); every request is a real HTTP request. An attack passes when the
endpoint refuses it and nothing it aimed at happened (no file read or written, no row changed).
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import clickhouse_connect
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import write_config
from watchkeeper.commands.sink import query_limits, serve_query_endpoint
from watchkeeper.commands.sql import query as sql_query
from watchkeeper.dashboard.queries import active_alerts, ingest_status, series_list
from watchkeeper.plumbing.broker import free_port
from watchkeeper.plumbing.config import Config, load_config
from watchkeeper.plumbing.errors import WatchkeeperError
from watchkeeper.reports.clickhouse_reader import get_reader
from watchkeeper.sinks.clickhouse_http import EndpointConfigError, EndpointOptions
from watchkeeper.sinks.clickhouse_sink import ClickHouse

SECRET_FILE_MARK = "root:"  # the first line of /etc/passwd


@dataclass
class Endpoint:
    cfg: Config
    port: int
    loop: asyncio.AbstractEventLoop
    ch: ClickHouse

    def request(self, query: str | None = None, *, body: str | None = None, headers: dict[str, str] | None = None,
                **params: str) -> tuple[int, str]:
        if query is not None:
            params["query"] = query
        url = f"http://127.0.0.1:{self.port}/?{urllib.parse.urlencode(params)}"
        req = urllib.request.Request(url, data=body.encode() if body is not None else None,
                                     method="POST" if body is not None else "GET", headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def run(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)  # type: ignore[arg-type]


def _serve(cfg: Config) -> Iterator[Endpoint]:
    ready = threading.Event()
    box: list[Endpoint] = []
    stop: list[asyncio.Event] = []
    failure: list[BaseException] = []

    async def serve() -> None:
        ch = ClickHouse(cfg.clickhouse_dsn, cfg.clickhouse.samples_ttl_days, query_limits(cfg))
        await ch.open()
        await ch._run(ch.writer.command, "INSERT INTO alerts (fingerprint, rule, state, starts_at, event_time) "
                                         "VALUES ('f1', 'HighCPU', 'firing', now(), now())")
        try:
            runner = await serve_query_endpoint(cfg, ch)
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            await ch.close()
            return
        done = asyncio.Event()
        stop.append(done)
        box.append(Endpoint(cfg, cfg.clickhouse.http_port, asyncio.get_running_loop(), ch))
        ready.set()
        try:
            await done.wait()
        finally:
            await runner.cleanup()
            await ch.close()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    assert ready.wait(60)
    if failure:
        raise failure[0]
    yield box[0]
    box[0].loop.call_soon_threadsafe(stop[0].set)
    thread.join(30)


def _config(ch_dsn: str, **clickhouse: object) -> Config:
    cfg = Config()
    cfg.clickhouse.dsn = ch_dsn
    cfg.clickhouse.http_port = free_port()
    cfg.clickhouse.query_max_execution_time = 3.0
    cfg.clickhouse.query_max_memory_usage = 256 * 2**20
    for key, value in clickhouse.items():
        setattr(cfg.clickhouse, key, value)
    return cfg


@pytest.fixture(scope="module")
def endpoint(chdb_dir: Path) -> Iterator[Endpoint]:
    """One endpoint for the attacks (each checks that nothing changed), on a database of this module's own."""
    db = f"t_security_{uuid.uuid4().hex[:8]}"
    clickhouse_connect.get_client(dsn=f"chdb://{chdb_dir}").command(f"CREATE DATABASE {db}")
    yield from _serve(_config(f"chdb://{chdb_dir}?database={db}"))


@pytest.fixture
def fresh(ch_dsn: str) -> Iterator[Endpoint]:
    yield from _serve(_config(ch_dsn))


@pytest.fixture
def locked(ch_dsn: str) -> Iterator[Endpoint]:
    yield from _serve(_config(ch_dsn, http_user="grafana", http_password="s3cret pass"))


def _refused(ep: Endpoint, query: str | None, *, body: str | None = None, **params: str) -> str:
    status, text = ep.request(query, body=body, **params)
    assert status == 403, (query, body, status, text)
    assert SECRET_FILE_MARK not in text
    return text


def _alerts_intact(ep: Endpoint) -> None:
    assert ep.request("SELECT fingerprint, rule FROM alerts") == (200, "f1\tHighCPU\n")


# --- files ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("query", [
    "SELECT file('/etc/passwd')",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT FILE('/etc/passwd')",
    "SELECT * FROM FiLe('/etc/passwd', 'LineAsString')",
    "SELECT `file`('/etc/passwd')",
    "SELECT file('/etc/passwd') AS harmless",
    "SELECT * FROM (SELECT * FROM (SELECT file('/etc/passwd')))",
    "WITH file('/etc/passwd') AS x SELECT x",
    "WITH t AS (SELECT * FROM file('/etc/passwd', 'LineAsString')) SELECT * FROM t",
    "SELECT 1 WHERE 'x' IN (SELECT * FROM file('/etc/passwd', 'LineAsString'))",
    "SELECT * FROM numbers(1) AS n JOIN file('/etc/passwd', 'LineAsString') AS f ON 1",
    "SELECT arrayMap(p -> file(p), ['/etc/passwd'])",
    "DESCRIBE TABLE file('/etc/passwd')",
    "EXPLAIN SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM view(SELECT file('/etc/passwd'))",
    "SELECT * FROM fileCluster('default', '/etc/passwd', 'LineAsString')",
])
def test_file_reads_are_refused(endpoint: Endpoint, query: str) -> None:
    assert "is not allowed" in _refused(endpoint, query)
    assert "is not allowed" in _refused(endpoint, None, body=query)


@pytest.mark.parametrize("clause", [
    "INTO OUTFILE '{p}'",
    "INTO OUTFILE '{p}' FORMAT RawBLOB",
    "INTO OUTFILE '{p}' APPEND",
    "INTO OUTFILE '{p}' TRUNCATE",
    "INTO OUTFILE '{p}' AND STDOUT",
    "INTO OUTFILE '{p}' COMPRESSION 'gzip'",
])
def test_into_outfile_writes_nothing(endpoint: Endpoint, tmp_path: Path, clause: str) -> None:
    new, kept = tmp_path / "new.txt", tmp_path / "kept.txt"
    kept.write_text("keep me\n")
    for target in (new, kept):
        _refused(endpoint, f"SELECT 'x' {clause.format(p=target)}")
    for query in ("EXPLAIN SELECT 1", "EXPLAIN AST SELECT 1", "EXPLAIN SYNTAX SELECT 1", "SHOW TABLES",
                  "SHOW CREATE TABLE alerts", "DESCRIBE TABLE alerts", "EXISTS TABLE alerts",
                  "SELECT 1 UNION ALL SELECT 2", "WITH 1 AS x SELECT x", "(SELECT 1)"):
        _refused(endpoint, f"{query} {clause.format(p=new)}")
    assert not new.exists()
    assert kept.read_text() == "keep me\n"


# Names and aliases that try to forge lines of the `EXPLAIN AST` dump the check walks (raw newlines,
# indentation, node types, children counts).
_FORGERY = st.lists(st.sampled_from(["\n", " ", "  ", "Function", "numbers", "file", "Literal", "Set",
                                     "(children 1)", "(alias", ")", "SelectWithUnionQuery", "Identifier", "x",
                                     "'", "\\", "`", "\t", ";"]), max_size=12).map("".join)


def _backquoted(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alias=_FORGERY, other=_FORGERY)
def test_forged_names_never_get_a_file_read_or_written(endpoint: Endpoint, alias: str, other: str) -> None:
    target = Path(f"/tmp/wk-forged-{uuid.uuid4().hex}")
    for query in (f"SELECT 1 AS {_backquoted(other)}, file('/etc/passwd') AS {_backquoted(alias)}",
                  f"SELECT {_backquoted(other)} FROM file('/etc/passwd', 'LineAsString') AS {_backquoted(alias)}",
                  f"SELECT 1 AS {_backquoted(alias)} INTO OUTFILE '{target}'",
                  f"SELECT 1 AS {_backquoted(alias)} SETTINGS readonly = 0"):
        status, text = endpoint.request(query)
        assert status != 200 and SECRET_FILE_MARK not in text, (query, status, text)
    assert not target.exists()


# --- the network, processes, other databases: every table function but a few computed ones ---------------

FOREIGN = {
    "url": "url('http://127.0.0.1:1/', 'CSV', 'a String')",
    "s3": "s3('http://127.0.0.1:1/b/k.csv', 'CSV', 'a String')",
    "s3Cluster": "s3Cluster('default', 'http://127.0.0.1:1/b/k.csv', 'CSV', 'a String')",
    "hdfs": "hdfs('hdfs://127.0.0.1:1/f', 'CSV', 'a String')",
    "remote": "remote('127.0.0.1:1', system.one)",
    "remoteSecure": "remoteSecure('127.0.0.1:1', system.one)",
    "cluster": "cluster('default', system.one)",
    "clusterAllReplicas": "clusterAllReplicas('default', system.one)",
    "mysql": "mysql('127.0.0.1:1', 'db', 't', 'u', 'p')",
    "postgresql": "postgresql('127.0.0.1:1', 'db', 't', 'u', 'p')",
    "mongodb": "mongodb('127.0.0.1:1', 'db', 'c', 'u', 'p', 'a String')",
    "redis": "redis('127.0.0.1:1', 'k', 'k String')",
    "sqlite": "sqlite('/tmp/x.db', 't')",
    "odbc": "odbc('DSN=x', 't')",
    "jdbc": "jdbc('jdbc:x', 't')",
    "executable": "executable('cat /etc/passwd', 'LineAsString', 'a String')",
    "python": "python('x')",
    "input": "input('a String')",
    "azureBlobStorage": "azureBlobStorage('http://127.0.0.1:1', 'c', 'b', 'CSV')",
    "gcs": "gcs('http://127.0.0.1:1/b/k.csv', 'CSV', 'a String')",
    "iceberg": "iceberg('http://127.0.0.1:1/t')",
    "icebergLocal": "icebergLocal('/tmp/t')",
    "deltaLake": "deltaLake('http://127.0.0.1:1/t')",
    "hudi": "hudi('http://127.0.0.1:1/t')",
    "dictionary": "dictionary('d')",
    "urlCluster": "urlCluster('default', 'http://127.0.0.1:1/', 'CSV', 'a String')",
    "loop": "loop(numbers(1))",
    "viewExplain": "viewExplain('EXPLAIN AST', '', (SELECT 1))",
    "filesystem": "filesystem('/etc')",
}


def _shapes(call: str) -> list[str]:
    """One forbidden call in every place a query can hide it."""
    mixed = call[0].upper() + call[1:]
    return [
        f"SELECT * FROM {call}",
        f"SELECT * FROM {call} AS innocent",
        f"SELECT * FROM {mixed}",
        f"SELECT * FROM (SELECT * FROM {call})",
        f"WITH w AS (SELECT * FROM {call}) SELECT * FROM w",
        f"SELECT 1 WHERE 1 IN (SELECT 1 FROM {call})",
        f"SELECT * FROM numbers(1) AS n JOIN {call} AS j ON 1",
        f"SELECT * FROM numbers(1) UNION ALL SELECT 1 FROM {call}",
    ]


@pytest.mark.parametrize("name", sorted(FOREIGN))
def test_table_functions_that_reach_out_are_refused_wherever_they_hide(endpoint: Endpoint, name: str) -> None:
    for query in _shapes(FOREIGN[name]):
        assert "is not allowed" in _refused(endpoint, query), query
    assert "is not allowed" in _refused(endpoint, None, body=_shapes(FOREIGN[name])[0])


def test_dictionaries_and_join_tables_are_refused(endpoint: Endpoint) -> None:
    for query in ("SELECT dictGet('d', 'a', toUInt64(1))", "SELECT dictGetOrDefault('d', 'a', 1, 'x')",
                  "SELECT dictHas('d', 1)", "SELECT joinGet('j', 'v', 1)"):
        assert "is not allowed" in _refused(endpoint, query)


def test_no_view_or_dictionary_can_hide_a_forbidden_function(endpoint: Endpoint) -> None:
    """A view could wrap file() only if one existed: the sink creates plain tables only, and the endpoint no view."""
    _refused(endpoint, "CREATE VIEW v AS SELECT file('/etc/passwd')")
    status, text = endpoint.request(
        "SELECT name, engine FROM system.tables WHERE database = currentDatabase() ORDER BY name")
    assert status == 200
    assert [line.split("\t")[0] for line in text.splitlines()] == ["aggregates", "alerts", "notifications", "samples"]
    assert all(line.endswith("MergeTree") for line in text.splitlines()), text
    assert endpoint.request("SELECT count() FROM system.dictionaries") == (200, "0\n")


# --- statements, settings ------------------------------------------------------------------------------------

@pytest.mark.parametrize("query", [
    "INSERT INTO alerts (fingerprint, rule) VALUES ('evil', 'x')",
    "INSERT INTO FUNCTION file('/tmp/wk-evil.csv', 'CSV') SELECT 1",
    "CREATE TABLE evil (a UInt8) ENGINE = Memory",
    "CREATE TABLE evil ENGINE = File(CSV, '/etc/passwd') AS SELECT 1",
    "DROP TABLE alerts",
    "TRUNCATE TABLE alerts",
    "ALTER TABLE alerts DELETE WHERE 1",
    "ALTER TABLE alerts UPDATE rule = 'x' WHERE 1",
    "DELETE FROM alerts WHERE 1",
    "RENAME TABLE alerts TO evil",
    "SYSTEM FLUSH LOGS",
    "SYSTEM SHUTDOWN",
    "KILL QUERY WHERE 1",
    "OPTIMIZE TABLE alerts FINAL",
    "SET readonly = 0",
    "USE system",
    "ATTACH TABLE evil (a UInt8) ENGINE = Memory",
    "DETACH TABLE alerts",
    "BACKUP TABLE alerts TO File('/tmp/wk-evil-backup')",
    "RESTORE TABLE alerts FROM File('/tmp/wk-evil-backup')",
    "CREATE FUNCTION evil AS x -> x",
    "CREATE USER evil",
    "GRANT ALL ON *.* TO default",
    "EXPLAIN INSERT INTO alerts (fingerprint) VALUES ('x')",
    "EXPLAIN AST DROP TABLE alerts",
    "SELECT 1 PARALLEL WITH SELECT 2",
])
def test_statements_that_are_not_reads_are_refused(endpoint: Endpoint, query: str) -> None:
    _refused(endpoint, query)
    _refused(endpoint, None, body=query)
    _alerts_intact(endpoint)


@pytest.mark.parametrize("query", [
    "SELECT 1; SELECT 2",
    "SELECT 1; SELECT file('/etc/passwd')",
    "SELECT 1;INSERT INTO alerts (fingerprint, rule) VALUES ('evil', 'x')",
    "SELECT 1;\nDROP TABLE alerts",
    "SELECT ';'; SELECT 2",
])
def test_one_statement_per_request(endpoint: Endpoint, query: str) -> None:
    for status, text in (endpoint.request(query), endpoint.request(None, body=query)):
        assert status == 400 and "Multi-statements are not allowed" in text, (query, status, text)
    _alerts_intact(endpoint)


def test_settings_cannot_be_changed_from_a_request(endpoint: Endpoint) -> None:
    for query in ("SELECT getSetting('readonly') SETTINGS readonly = 0",
                  "SELECT * FROM (SELECT 1 SETTINGS max_execution_time = 0)",
                  "SELECT count() FROM numbers(10) SETTINGS max_result_rows = 0",
                  "EXPLAIN indexes = 1 SELECT 1"):
        assert "READONLY" in _refused(endpoint, query)
    for param in ("readonly", "allow_ddl", "max_result_rows", "allow_introspection_functions", "user_files_path",
                  "format_template_resultset"):
        text = _refused(endpoint, "SELECT getSetting('readonly')", **{param: "0"})
        assert param in text and "would change settings" in text
    assert endpoint.request("SELECT getSetting('readonly'), getSetting('max_execution_time')") == (200, "1\t3\n")
    # Grafana's data source always sends its timeout: accepted, and the endpoint's own limit still applies
    assert endpoint.request("SELECT getSetting('max_execution_time')", max_execution_time="0") == (200, "3\n")


# --- limits --------------------------------------------------------------------------------------------------

def test_a_runaway_read_times_out_while_an_insert_completes_beside_it(fresh: Endpoint) -> None:
    """Reads run on their own chDB sessions and threads: the insert does not wait for the 3 s read."""
    result: list[tuple[int, str]] = []
    slow_sql = "SELECT count() AS wk_slow_read FROM numbers(1e13)"
    slow = threading.Thread(target=lambda: result.append(fresh.request(slow_sql)))
    slow.start()
    table = pa.table({"fingerprint": ["f2"], "rule": ["Inserted"], "state": ["firing"],
                      "starts_at": pa.array([datetime.now(UTC)], pa.timestamp("ms", "UTC")),
                      "event_time": pa.array([datetime.now(UTC)], pa.timestamp("ms", "UTC"))})
    running = "SELECT count() FROM system.processes WHERE query LIKE '%wk_slow_read%' AND query NOT LIKE '%processes%'"
    while fresh.request(running) != (200, "1\n"):
        assert slow.is_alive(), result
    fresh.run(fresh.ch.insert("alerts", table))
    assert slow.is_alive(), "the insert finished only after the slow read: it waited for it"
    slow.join(60)
    status, text = result[0]
    assert status == 500 and "TIMEOUT_EXCEEDED" in text, text
    assert fresh.request("SELECT rule FROM alerts WHERE fingerprint = 'f2'") == (200, "Inserted\n")


def test_result_and_memory_limits(endpoint: Endpoint) -> None:
    status, text = endpoint.request("SELECT number FROM numbers(2000000)")
    assert status == 500 and "TOO_MANY_ROWS_OR_BYTES" in text
    status, text = endpoint.request("SELECT groupArray(toString(number)) FROM numbers(300000000)")
    assert status == 500 and ("MEMORY_LIMIT_EXCEEDED" in text or "TIMEOUT_EXCEEDED" in text), text
    # the session that hit a limit is replaced: the next answers are whole and right
    assert endpoint.request("SELECT 42") == (200, "42\n")
    assert endpoint.request("SELECT 43") == (200, "43\n")


# --- who may ask ---------------------------------------------------------------------------------------------

def test_foreign_host_and_cross_origin_requests_are_refused(endpoint: Endpoint) -> None:
    port = endpoint.port
    for host in ("evil.example", f"evil.example:{port}", f"localhost:{port + 1}", f"10.0.0.1:{port}"):
        status, text = endpoint.request("SELECT 1", headers={"Host": host})
        assert status == 403 and "is not this endpoint" in text, host
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", f"LOCALHOST:{port}"):
        assert endpoint.request("SELECT 1", headers={"Host": host}) == (200, "1\n"), host
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Origin": f"http://localhost:{port + 1}"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Sec-Fetch-Site": "same-site"}):
        status, text = endpoint.request("SELECT 1", headers=headers)
        assert status == 403 and "cross-" in text, headers
        status, _ = endpoint.request(None, body="SELECT 1", headers=headers)
        assert status == 403, headers
    own = {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"}
    assert endpoint.request("SELECT 1", headers=own) == (200, "1\n")
    assert endpoint.request("SELECT 1", headers={"Sec-Fetch-Site": "none"}) == (200, "1\n")


def test_credentials_when_a_password_is_set(locked: Endpoint) -> None:
    status, text = locked.request("SELECT 1")
    assert status == 401 and "AUTHENTICATION_FAILED" in text
    for creds in ({"X-ClickHouse-User": "grafana", "X-ClickHouse-Key": "wrong"},
                  {"X-ClickHouse-User": "default", "X-ClickHouse-Key": "s3cret pass"},
                  {"Authorization": "Basic " + base64.b64encode(b"grafana:nope").decode()}):
        status, text = locked.request("SELECT 1", headers=creds)
        assert status == 401 and "s3cret" not in text and "nope" not in text and "wrong" not in text
    assert locked.request("SELECT 1", headers={"X-ClickHouse-User": "grafana", "X-ClickHouse-Key": "s3cret pass"}) \
        == (200, "1\n")
    basic = "Basic " + base64.b64encode(b"grafana:s3cret pass").decode()
    assert locked.request("SELECT 1", headers={"Authorization": basic}) == (200, "1\n")
    assert locked.request("SELECT 1", user="grafana", password="s3cret pass") == (200, "1\n")
    client = clickhouse_connect.get_client(host="127.0.0.1", port=locked.port, username="grafana",
                                           password="s3cret pass")
    assert client.query("SELECT rule FROM alerts").result_rows == [("HighCPU",)]
    assert sql_query(locked.cfg, "SELECT count() FROM alerts") == b"1\n"
    assert get_reader(locked.cfg.clickhouse_reader_dsn).query("SELECT 2").result_rows == [(2,)]
    assert "s3cret" not in locked.cfg.clickhouse_query_url


def test_an_endpoint_off_loopback_needs_a_password() -> None:
    with pytest.raises(EndpointConfigError, match=r"clickhouse\.http_password"):
        EndpointOptions(host="0.0.0.0").check_exposure()
    with pytest.raises(WatchkeeperError, match="WK_CLICKHOUSE_HTTP_PASSWORD"):
        EndpointOptions(host="192.0.2.10").check_exposure()
    EndpointOptions(host="0.0.0.0", password="x").check_exposure()
    EndpointOptions(host="::1").check_exposure()
    EndpointOptions(host="localhost").check_exposure()


def test_up_refuses_to_start_an_open_endpoint_off_loopback(tmp_path: Path) -> None:
    cfg = Config(data_dir=str(tmp_path / "data"))
    cfg.clickhouse.http_host = "0.0.0.0"
    path = write_config(cfg, tmp_path / "watchkeeper.yaml")
    for argv in (["up"], ["sink", "clickhouse"]):
        done = subprocess.run([sys.executable, "-m", "watchkeeper", *argv, "--config", str(path)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 1, (argv, done.stderr)
        assert "set clickhouse.http_password" in done.stderr and "WK_CLICKHOUSE_HTTP_PASSWORD" in done.stderr
    assert not (tmp_path / "data" / "clickhouse").exists()  # refused before anything started


def test_the_password_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WK_CLICKHOUSE_HTTP_PASSWORD", "p@ss:/word")
    cfg = load_config(str(write_config(Config(), tmp_path / "watchkeeper.yaml")))
    assert cfg.clickhouse.http_password == "p@ss:/word"
    assert cfg.clickhouse_http_headers() == {"X-ClickHouse-User": "default", "X-ClickHouse-Key": "p@ss:/word"}
    assert cfg.clickhouse_reader_dsn == "http://default:p%40ss%3A%2Fword@127.0.0.1:8123"
    assert "p@ss" not in cfg.clickhouse_query_url


# --- what must keep working ----------------------------------------------------------------------------------

def test_readme_examples_and_introspection_keep_working(endpoint: Endpoint) -> None:
    cfg = endpoint.cfg
    assert sql_query(cfg, "SELECT name, count() FROM samples GROUP BY name") == b""
    assert sql_query(cfg, "SELECT name, labels['mode'] AS mode, start, increase FROM aggregates FINAL WHERE "
                          "name = 'node_cpu_seconds_total' ORDER BY start DESC LIMIT 8") == b""
    assert sql_query(cfg, "SELECT labels['instance'] AS target, argMax(value, ts) AS ok FROM samples "
                          "WHERE name = 'probe_success' GROUP BY target") == b""
    assert sql_query(cfg, "SELECT receiver, integration, status, count() FROM notifications GROUP BY ALL") == b""
    assert sql_query(cfg, "SELECT rule FROM alerts", "PrettyCompact").count(b"HighCPU") == 1
    assert endpoint.request("SELECT count() FROM aggregates") == (200, "0\n")  # the README's curl
    rows = json.loads(endpoint.request("SELECT rule, state FROM alerts FORMAT JSON")[1])
    assert rows["data"] == [{"rule": "HighCPU", "state": "firing"}]
    assert endpoint.request("SHOW TABLES") == (200, "aggregates\nalerts\nnotifications\nsamples\n")
    assert endpoint.request("EXISTS TABLE alerts") == (200, "1\n")
    assert endpoint.request("DESCRIBE TABLE alerts")[1].startswith("fingerprint\tString")
    assert endpoint.request("SELECT count() FROM system.tables WHERE database = currentDatabase()") == (200, "4\n")
    assert endpoint.request("EXPLAIN SELECT count() FROM alerts")[0] == 200
    assert endpoint.request("WITH 2 AS x SELECT x * number FROM numbers(3) ORDER BY 1") == (200, "0\n2\n4\n")
    assert endpoint.request("SELECT format('{}-{}', 'a', 'b')") == (200, "a-b\n")
    assert endpoint.request("SELECT {n:UInt8} + 1, {s:String}", param_n="41", param_s="a\\tb") == (200, "42\ta\\tb\n")
    assert endpoint.request("SELECT 1", database="system", default_format="CSV") == (200, "1\n")


def test_clickhouse_connect_reports_and_dashboard_keep_working(endpoint: Endpoint) -> None:
    client = clickhouse_connect.get_client(host="127.0.0.1", port=endpoint.port)
    assert client.query("SELECT version(), timezone()").result_rows[0][1]
    assert client.query("SELECT rule FROM alerts WHERE state = {s:String}", parameters={"s": "firing"}) \
        .result_rows == [("HighCPU",)]
    assert client.query_df("SELECT number FROM numbers(5)").shape == (5, 1)
    assert client.command("SELECT 1") == 1
    reader = get_reader(endpoint.cfg.clickhouse_reader_dsn)
    now = datetime.now(UTC)
    assert [a["rule"] for a in active_alerts(reader, now)] == ["HighCPU"]
    assert ingest_status(reader, now) is not None
    assert series_list(reader, now) == []
    with urllib.request.urlopen(f"http://127.0.0.1:{endpoint.port}/ping", timeout=10) as r:
        assert r.read() == b"Ok.\n"
