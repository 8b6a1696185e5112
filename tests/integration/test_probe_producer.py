"""Real local HTTP and HTTPS servers, probed: up, slow, failing, closed and self-signed targets become data."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import shutil
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from watchkeeper.plumbing.broker import free_port
from watchkeeper.plumbing.config import Config, ProbeTargetConfig
from watchkeeper.producers.probe import probe_once, probe_session, run_probe_producer
from watchkeeper.schemas import SampleBatch, SeriesBlock

CERT_DAYS = 30


@dataclass(frozen=True)
class Servers:
    http: str
    https: str
    cert: Path


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 valid CERT_DAYS from now: `cryptography` if installed, else openssl."""
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("needs the cryptography package or the openssl command to make a certificate")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", str(key_path), "-out", str(cert_path), "-days", str(CERT_DAYS),
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       check=True, capture_output=True)
        return cert_path, key_path
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def _up(_: web.Request) -> web.Response:
    return web.Response(text="status: ready")


async def _slow(_: web.Request) -> web.Response:
    await asyncio.sleep(10)
    return web.Response(text="too late")


async def _error(_: web.Request) -> web.Response:
    return web.Response(status=500, text="boom")


async def _empty(_: web.Request) -> web.Response:
    return web.Response(status=204)


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[Servers]:
    """One app served on plain HTTP and on HTTPS with a fresh self-signed certificate."""
    app = web.Application()
    app.router.add_get("/up", _up)
    app.router.add_get("/slow", _slow)
    app.router.add_get("/error", _error)
    app.router.add_get("/empty", _empty)
    # Cancel handlers whose client left (the slow one), so teardown does not wait for them.
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert, key = _self_signed(tmp_path)
    context.load_cert_chain(cert, key)
    http_port, https_port = free_port(), free_port()
    await web.TCPSite(runner, "127.0.0.1", http_port).start()
    await web.TCPSite(runner, "127.0.0.1", https_port, ssl_context=context).start()
    try:
        yield Servers(http=f"http://127.0.0.1:{http_port}", https=f"https://127.0.0.1:{https_port}", cert=cert)
    finally:
        await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with probe_session() as s:
        yield s


def _values(blocks: list[SeriesBlock]) -> dict[str, float]:
    """Series by name, with the phase appended (`probe_http_duration_seconds:connect`) for phase series."""
    return {b.name + (f":{b.labels['phase']}" if "phase" in b.labels else ""): b.values[0] for b in blocks}


async def _probe(session: aiohttp.ClientSession, **fields: object) -> tuple[dict[str, float], float]:
    target = ProbeTargetConfig.model_validate(fields)
    now = time.time()
    blocks = await probe_once(target, session, now)
    assert all(b.ts == [now] and b.labels["instance"] == target.url for b in blocks)
    return _values(blocks), now


async def test_an_up_target_with_a_matching_body(servers: Servers, session: aiohttp.ClientSession) -> None:
    got, _ = await _probe(session, url=f"{servers.http}/up", body_match=r"status: (ready|ok)", labels={"t": "up"})
    assert got["probe_success"] == 1 and got["probe_http_status_code"] == 200
    phases = {k.split(":")[1]: v for k, v in got.items() if k.startswith("probe_http_duration_seconds")}
    # An IP literal needs no lookup, and plain HTTP no certificate.
    assert set(phases) == {"connect", "processing", "transfer"}
    assert all(v >= 0 for v in phases.values())
    assert sum(phases.values()) <= got["probe_duration_seconds"] < 2
    assert "probe_ssl_cert_days_left" not in got


async def test_a_body_that_does_not_match_fails(servers: Servers, session: aiohttp.ClientSession) -> None:
    got, _ = await _probe(session, url=f"{servers.http}/up", body_match="degraded")
    assert got["probe_success"] == 0 and got["probe_http_status_code"] == 200


async def test_a_host_name_is_resolved_on_every_probe(servers: Servers, session: aiohttp.ClientSession) -> None:
    url = servers.http.replace("127.0.0.1", "localhost") + "/up"
    for _ in range(2):
        got, _ = await _probe(session, url=url)
        assert got["probe_success"] == 1
        assert got["probe_http_duration_seconds:resolve"] >= 0


async def test_a_slow_target_times_out(servers: Servers, session: aiohttp.ClientSession) -> None:
    got, _ = await _probe(session, url=f"{servers.http}/slow", timeout=0.5)
    assert got["probe_success"] == 0 and got["probe_http_status_code"] == 0
    assert 0.5 <= got["probe_duration_seconds"] < 1.0


async def test_a_server_error_is_its_status(servers: Servers, session: aiohttp.ClientSession) -> None:
    got, _ = await _probe(session, url=f"{servers.http}/error")
    assert got["probe_success"] == 0 and got["probe_http_status_code"] == 500
    got, _ = await _probe(session, url=f"{servers.http}/error", expect_status=[500])
    assert got["probe_success"] == 1


async def test_a_closed_port_is_down(session: aiohttp.ClientSession) -> None:
    got, _ = await _probe(session, url=f"http://127.0.0.1:{free_port()}/", timeout=2)
    assert got["probe_success"] == 0 and got["probe_http_status_code"] == 0
    assert got["probe_duration_seconds"] < 1


async def test_an_unresolvable_host_is_down(session: aiohttp.ClientSession) -> None:
    got, _ = await _probe(session, url="http://no-such-host.invalid/", timeout=3)
    assert got["probe_success"] == 0 and got["probe_http_status_code"] == 0


async def test_a_self_signed_certificate_without_verification(servers: Servers,
                                                              session: aiohttp.ClientSession) -> None:
    for path in ("/up", "/empty"):
        got, now = await _probe(session, url=servers.https + path, verify_tls=False)
        assert got["probe_success"] == 1
        assert abs(got["probe_ssl_cert_days_left"] - CERT_DAYS) <= 1
        assert abs(got["probe_ssl_earliest_cert_expiry"] - (now + CERT_DAYS * 86_400)) <= 86_400
        assert got["probe_http_duration_seconds:connect"] > 0


async def test_a_self_signed_certificate_with_verification_fails(servers: Servers,
                                                                 session: aiohttp.ClientSession) -> None:
    got, _ = await _probe(session, url=f"{servers.https}/up", verify_tls=True)
    assert got["probe_success"] == 0 and got["probe_http_status_code"] == 0
    assert "probe_ssl_cert_days_left" not in got


async def test_a_trusted_certificate_passes_verification(servers: Servers, session: aiohttp.ClientSession,
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenSSL reads SSL_CERT_FILE when loading the default CAs, so the test's certificate becomes trusted."""
    monkeypatch.setenv("SSL_CERT_FILE", str(servers.cert))
    got, _ = await _probe(session, url=f"{servers.https}/up", verify_tls=True)
    assert got["probe_success"] == 1 and abs(got["probe_ssl_cert_days_left"] - CERT_DAYS) <= 1


async def test_a_plain_session_still_probes(servers: Servers) -> None:
    """Sessions not from `probe_session` lack the trace hooks: fewer phases, same verdict and certificate."""
    async with aiohttp.ClientSession() as plain:
        got, _ = await _probe(plain, url=f"{servers.https}/up", verify_tls=False)
    assert got["probe_success"] == 1 and abs(got["probe_ssl_cert_days_left"] - CERT_DAYS) <= 1
    assert [k for k in got if k.startswith("probe_http_duration_seconds")] == [
        "probe_http_duration_seconds:transfer"]


class Collector:
    """Stands in for `BatchSender`, whose own tests cover Kafka; the producer only calls `send`."""

    def __init__(self) -> None:
        self.batches: list[SampleBatch] = []

    async def send(self, batch: SampleBatch) -> None:
        self.batches.append(batch)


async def test_the_producer_sends_a_batch_per_interval_until_stopped(servers: Servers) -> None:
    cfg = Config()
    cfg.producers.probe.targets = [
        ProbeTargetConfig(url=f"{servers.http}/up", interval=0.2, timeout=1),
        ProbeTargetConfig(url=f"http://127.0.0.1:{free_port()}/", interval=0.2, timeout=1),
    ]
    sink, stop = Collector(), asyncio.Event()
    task = asyncio.create_task(run_probe_producer(cfg.producers.probe, sink, stop=stop))
    async with asyncio.timeout(5):
        while len(sink.batches) < 6:
            await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, timeout=2)

    assert all(b.source == "probe" and b.labels == {"job": "probe"} for b in sink.batches)
    by_target: dict[str, list[tuple[float, float]]] = {}
    for batch in sink.batches:
        success = next(s for s in batch.series if s.name == "probe_success")
        by_target.setdefault(success.labels["instance"], []).append((success.ts[0], success.values[0]))
    up, down = (by_target[t.url] for t in cfg.producers.probe.targets)
    assert len(up) >= 3 and len(down) >= 2
    assert {v for _, v in up} == {1.0} and {v for _, v in down} == {0.0}
    # The first probe starts at once, the next ones on interval boundaries; a loaded machine may miss one.
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(up)]
    assert 0 < gaps[0] < 0.45 and all(0.1 < gap < 0.45 for gap in gaps[1:])
