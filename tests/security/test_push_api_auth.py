"""The push API against the attacks of issue 16, on a real listener started as `watchkeeper produce push` starts
it (`producers.runner.start_push_api`) in front of a spool draining into the real broker.

Given a browser page of another site, expect its POST refused (Origin, Sec-Fetch-Site) and nothing spooled;
given a foreign Host (DNS rebinding), refused; given a token, curl's bearer and Prometheus' basic auth taken,
a wrong or missing one refused, compared in constant time; given a non-loopback bind without a token, no start.
"""

from __future__ import annotations

import base64
import hmac
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests.conftest import write_config
from watchkeeper.commands.produce import producer_settings
from watchkeeper.plumbing import http_guard
from watchkeeper.plumbing.config import Config
from watchkeeper.plumbing.http_guard import ListenerError, check_listener, is_loopback
from watchkeeper.producers.runner import run_producers, start_push_api
from watchkeeper.producers.sender import BatchSender

SAMPLE = orjson.dumps({"name": "queue_depth", "labels": {"queue": "emails"}, "ts": 1_790_000_000.5, "value": 17})
TOKEN = "pUsh-T0ken-8d1f0c2b"


@dataclass
class Push:
    url: str
    port: int
    sender: BatchSender

    def spooled(self) -> int:
        return self.sender.spool.stats.spooled_batches


async def _serve(cfg: Config, tmp_path: Path) -> AsyncIterator[Push]:
    sender = BatchSender(cfg.kafka.bootstrap, cfg.kafka.topics.samples, tmp_path / "spool", self_metrics_seconds=0)
    await sender.start()
    runner: web.AppRunner = await start_push_api(cfg.producers.push, cfg.ingest_limits(), sender)
    try:
        p = cfg.producers.push
        yield Push(f"http://{p.host}:{p.port}", p.port, sender)
    finally:
        await runner.cleanup()
        await sender.stop()


@pytest.fixture
async def open_push(wk_config: Config, tmp_path: Path) -> AsyncIterator[Push]:
    """On loopback without a token: the README's curl examples."""
    async for push in _serve(wk_config, tmp_path):
        yield push


@pytest.fixture
async def token_push(wk_config: Config, tmp_path: Path) -> AsyncIterator[Push]:
    wk_config.producers.push.token = TOKEN
    async for push in _serve(wk_config, tmp_path):
        yield push


async def _post(url: str, body: bytes = SAMPLE, **headers: str) -> tuple[int, str]:
    headers = {k.replace("_", "-"): v for k, v in headers.items()}
    headers.setdefault("Content-Type", "application/json")
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as r:
        return r.status, await r.text()


async def test_curl_on_loopback_needs_no_token(open_push: Push) -> None:
    status, text = await _post(f"{open_push.url}/api/v1/samples")
    assert status == 202, text
    # A same-origin request from a browser (a page served by this very host:port) is not cross-origin.
    status, _ = await _post(f"{open_push.url}/api/v1/samples", Origin=f"http://127.0.0.1:{open_push.port}",
                            Sec_Fetch_Site="same-origin")
    assert status == 202


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example", "Content-Type": "text/plain"},  # the "simple" CORS request: no preflight
    {"Origin": "null", "Content-Type": "text/plain"},  # a sandboxed iframe or a file:// page
    {"Origin": "http://127.0.0.1:1", "Content-Type": "text/plain"},  # another port is another origin
    {"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"},
    {"Sec-Fetch-Site": "same-site", "Content-Type": "text/plain"},  # localhost:3000 posting to localhost:9091
])
async def test_browser_pages_of_other_origins_are_refused_and_nothing_is_spooled(
        open_push: Push, headers: dict[str, str]) -> None:
    before = open_push.spooled()
    status, text = await _post(f"{open_push.url}/api/v1/samples", **{k.replace("-", "_"): v for k, v in
                                                                      headers.items()})
    assert status == 403 and "cross-origin request refused" in text, text
    status, _ = await _post(f"{open_push.url}/metrics/job/x", b"up 1\n", **{k.replace("-", "_"): v for k, v in
                                                                             headers.items()})
    assert status == 403
    assert open_push.spooled() == before


@pytest.mark.parametrize("host", ["evil.example", "evil.example:9091", "127.0.0.1.nip.io", "localhost.evil.example"])
async def test_foreign_host_header_is_refused_on_loopback(open_push: Push, host: str) -> None:
    before = open_push.spooled()
    status, text = await _post(f"{open_push.url}/api/v1/samples", Host=host)
    assert status == 403 and "DNS rebinding" in text, text
    assert open_push.spooled() == before


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:9091", "127.0.0.1", "127.0.0.2:80", "[::1]:9091"])
async def test_loopback_host_names_are_taken(open_push: Push, host: str) -> None:
    assert (await _post(f"{open_push.url}/api/v1/samples", Host=host))[0] == 202


async def test_allowed_hosts_admit_a_reverse_proxy_name(wk_config: Config, tmp_path: Path) -> None:
    wk_config.producers.push.allowed_hosts = ["metrics.internal"]
    async for push in _serve(wk_config, tmp_path):
        assert (await _post(f"{push.url}/api/v1/samples", Host="metrics.internal:443"))[0] == 202
        assert (await _post(f"{push.url}/api/v1/samples", Host="other.internal"))[0] == 403


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(("authorization", "status"), [
    (None, 401),
    ("Bearer wrong", 401),
    (f"Bearer {TOKEN}x", 401),
    (f"Bearer {TOKEN[:-1]}", 401),
    (f"Bearer {TOKEN}", 202),  # curl -H "Authorization: Bearer ...", Prometheus remote_write `authorization:`
    (_basic("prometheus", TOKEN), 202),  # Prometheus remote_write `basic_auth:`, any user name
    (_basic("", TOKEN), 202),
    (_basic(TOKEN, "wrong"), 401),  # the token as user name is not the password
    ("Basic !!notbase64", 401),
    (f"Token {TOKEN}", 401),
])
async def test_token_right_wrong_missing(token_push: Push, authorization: str | None, status: int) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    got, text = await _post(f"{token_push.url}/api/v1/samples", **headers)
    assert got == status, text
    if status == 401:
        assert "WK_PUSH_TOKEN" not in text and "producers.push.token" in text


async def test_remote_write_takes_the_token_too(token_push: Push) -> None:
    assert (await _post(f"{token_push.url}/api/v1/write", b"", Content_Type="application/x-protobuf"))[0] == 401
    status, text = await _post(f"{token_push.url}/api/v1/write", b"", Content_Type="application/x-protobuf",
                               Authorization=_basic("prometheus", TOKEN))
    assert status in (204, 400), text  # past the guard: an empty body is the validator's business


async def test_liveness_needs_no_token_but_refuses_other_origins(token_push: Push) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{token_push.url}/-/healthy") as r:
            assert r.status == 200
        async with http.get(f"{token_push.url}/-/healthy", headers={"Host": "evil.example"}) as r:
            assert r.status == 403


async def test_the_token_is_compared_in_constant_time(token_push: Push, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(http_guard.hmac, "compare_digest", spy)
    assert (await _post(f"{token_push.url}/api/v1/samples", Authorization="Bearer short"))[0] == 401
    assert (await _post(f"{token_push.url}/api/v1/samples", Authorization=f"Bearer {TOKEN}"))[0] == 202
    assert len(calls) == 2
    # Digests of equal length are compared, so neither the content nor the length of the token leaks.
    assert all(len(a) == len(b) == 32 for a, b in calls)


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "192.0.2.10"])
def test_off_loopback_without_a_token_refuses_to_start(host: str) -> None:
    with pytest.raises(ListenerError) as err:
        check_listener("producers.push", host, "", "WK_PUSH_TOKEN")
    assert "producers.push.token" in str(err.value) and "WK_PUSH_TOKEN" in str(err.value)
    check_listener("producers.push", host, TOKEN, "WK_PUSH_TOKEN")  # with a token it may


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_counts_as_loopback(host: str) -> None:
    assert is_loopback(host)
    check_listener("producers.push", host, "", "WK_PUSH_TOKEN")


async def test_run_producers_refuses_before_starting_anything(wk_config: Config) -> None:
    import asyncio

    wk_config.producers.push.host = "0.0.0.0"
    with pytest.raises(ListenerError):
        await run_producers(producer_settings(wk_config), ["push"], asyncio.Event())
    assert not (wk_config.data_path / "spool").exists(), "nothing was started, not even the spool"


async def test_a_push_listener_on_127_0_0_2_serves_without_a_token(wk_config: Config, tmp_path: Path) -> None:
    wk_config.producers.push.host = "127.0.0.2"
    async for push in _serve(wk_config, tmp_path):
        assert (await _post(f"{push.url}/api/v1/samples"))[0] == 202


def test_watchkeeper_produce_push_off_loopback_says_how_to_set_the_token(wk_config: Config, tmp_path: Path) -> None:
    wk_config.producers.push.host = "0.0.0.0"
    cfg = write_config(wk_config, tmp_path / "watchkeeper.yaml")
    env = {k: v for k, v in __import__("os").environ.items() if k != "WK_PUSH_TOKEN"}
    proc = subprocess.run([sys.executable, "-m", "watchkeeper", "produce", "push", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 1, proc.stderr
    assert "producers.push.token" in proc.stderr and "WK_PUSH_TOKEN" in proc.stderr, proc.stderr


def test_wk_push_token_env_sets_the_token(wk_config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from watchkeeper.plumbing.config import load_config

    cfg_path = write_config(wk_config, tmp_path / "watchkeeper.yaml")
    monkeypatch.setenv("WK_PUSH_TOKEN", TOKEN)
    monkeypatch.setenv("WK_DASHBOARD_TOKEN", TOKEN + "d")
    cfg = load_config(str(cfg_path))
    assert cfg.producers.push.token == TOKEN and cfg.dashboard.token == TOKEN + "d"


@pytest.mark.skipif(__import__("shutil").which("prometheus") is None,
                    reason="the prometheus server is not installed (apt-get install prometheus)")
async def test_a_real_prometheus_remote_writes_with_authorization_or_basic_auth(wk_config: Config,
                                                                                tmp_path: Path) -> None:
    """Three push APIs with the token; Prometheus writes to one with `authorization:`, one with `basic_auth:` and
    one with a wrong credential. The first two take its samples; the third refuses every one (Prometheus counts
    them failed, nothing is spooled)."""
    import asyncio
    import json
    import urllib.parse
    import urllib.request

    from watchkeeper.plumbing.broker import free_port

    wk_config.producers.push.token = TOKEN
    pushes: list[Push] = []
    gens = []
    for i in range(3):
        wk_config.producers.push.port = free_port()
        gen = _serve(wk_config, tmp_path / f"p{i}")
        pushes.append(await gen.__anext__())
        gens.append(gen)
    prom_port = free_port()
    writes = [
        f"{{url: '{pushes[0].url}/api/v1/write', authorization: {{credentials: {TOKEN}}}}}",
        f"{{url: '{pushes[1].url}/api/v1/write', basic_auth: {{username: prometheus, password: {TOKEN}}}}}",
        f"{{url: '{pushes[2].url}/api/v1/write', authorization: {{credentials: wrong-{TOKEN}}}}}",
    ]
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s}\n"
        f"scrape_configs: [{{job_name: self, static_configs: [{{targets: ['127.0.0.1:{prom_port}']}}]}}]\n"
        f"remote_write: [{', '.join(writes)}]\n")
    with open(tmp_path / "prometheus.log", "wb") as log:
        prom = subprocess.Popen(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp_path / 'data'}",
                                 f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=log, stderr=subprocess.STDOUT)

    def failed_at_wrong() -> float:
        q = urllib.parse.urlencode({"query": "sum(prometheus_remote_storage_samples_failed_total{url=~'.*:"
                                             f"{pushes[2].port}/.*'}})"})
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/api/v1/query?{q}", timeout=5) as resp:
                result = json.load(resp)["data"]["result"]
        except OSError:
            return 0.0
        return float(result[0]["value"][1]) if result else 0.0

    try:
        for _ in range(240):
            if pushes[0].spooled() and pushes[1].spooled() and failed_at_wrong() > 0:
                break
            await asyncio.sleep(0.5)
        assert pushes[0].spooled() > 0, "authorization: credentials was refused"
        assert pushes[1].spooled() > 0, "basic_auth with the token as password was refused"
        assert failed_at_wrong() > 0 and pushes[2].spooled() == 0
    finally:
        prom.terminate()
        await asyncio.to_thread(prom.wait, 60)  # it flushes its queues on the way out: keep serving meanwhile
        for gen in gens:
            await gen.aclose()


@pytest.mark.parametrize(("origin", "host", "same"), [
    ("http://127.0.0.1:9091", "127.0.0.1:9091", True),
    ("http://LOCALHOST:9091", "localhost:9091", True),
    ("http://127.0.0.1:9092", "127.0.0.1:9091", False),
    ("http://localhost:9091", "127.0.0.1:9091", False),  # another name is another origin
    ("https://metrics.example", "metrics.example", True),  # TLS proxy in front: the listener sees plain http
    ("https://metrics.example", "metrics.example:443", True),
    ("http://metrics.example", "metrics.example:443", False),
    ("null", "127.0.0.1:9091", False),
    ("http://[::1]:9091", "[::1]:9091", True),
])
def test_origin_matching(origin: str, host: str, same: bool) -> None:
    assert http_guard._same_authority(origin, host) is same
