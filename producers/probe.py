"""The HTTP probe producer: is each target up, how fast, and when does its certificate expire.

Modelled on Prometheus' blackbox exporter http module and keeping its series names. A target that is
down is data (`probe_success 0`), never an exception. `probe_series` and `probe_succeeded` are pure, so
tests give them a result and a time; `probe_once` does the I/O; `run_probe_producer` is the loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import re
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Protocol

import aiohttp

from watchkeeper.plumbing.config import ProbeProducerConfig, ProbeTargetConfig
from watchkeeper.producers.ticks import wait_next_tick
from watchkeeper.schemas.samples import SampleBatch, SeriesBlock

log = logging.getLogger("watchkeeper.produce.probe")

_SECONDS_PER_DAY = 86_400.0


class BatchSink(Protocol):
    """What the loop needs of `producers.sender.BatchSender`, so tests can pass a list-backed fake.

    The result is ignored: a dropped batch is the sender's to count, and the next probe comes anyway.
    """

    async def send(self, batch: SampleBatch) -> object: ...


@dataclass(frozen=True)
class ProbeResult:
    """What one probe measured. `status` is 0 when no response arrived; `cert_not_after` is unix seconds."""

    success: bool
    status: int
    duration: float
    phases: dict[str, float] = field(default_factory=dict)
    cert_not_after: float | None = None


def probe_labels(target: ProbeTargetConfig) -> dict[str, str]:
    """`instance` is the URL, as blackbox exporter targets are; the target's own labels win (even `instance`)."""
    return {"instance": target.url, **target.labels}


def probe_succeeded(target: ProbeTargetConfig, status: int, body: str | None) -> bool:
    """Blackbox's rule: an expected status (any 2xx when none is listed) and, if set, a body that matches."""
    if status == 0:
        return False
    status_ok = status in target.expect_status if target.expect_status else 200 <= status < 300
    if not status_ok:
        return False
    return not target.body_match or (body is not None and re.search(target.body_match, body) is not None)


def probe_series(target: ProbeTargetConfig, result: ProbeResult, now: float) -> list[SeriesBlock]:
    """The blackbox series for one probe at `now`; certificate series only when a certificate was read."""
    labels = probe_labels(target)

    def gauge(name: str, value: float, **extra: str) -> SeriesBlock:
        return SeriesBlock(name=name, labels={**labels, **extra}, ts=[now], values=[float(value)])

    blocks = [
        gauge("probe_success", 1.0 if result.success else 0.0),
        gauge("probe_duration_seconds", result.duration),
        gauge("probe_http_status_code", result.status),
    ]
    blocks += [gauge("probe_http_duration_seconds", seconds, phase=phase)
               for phase, seconds in result.phases.items()]
    if result.cert_not_after is not None:
        blocks.append(gauge("probe_ssl_earliest_cert_expiry", result.cert_not_after))
        blocks.append(gauge("probe_ssl_cert_days_left", (result.cert_not_after - now) / _SECONDS_PER_DAY))
    return blocks


def cert_not_after(der: bytes) -> float:
    """A DER certificate's notAfter in unix seconds; `cryptography` when installed, else the stdlib decoder."""
    try:
        from cryptography import x509
    except ImportError:
        return _stdlib_not_after(der)
    cert = x509.load_der_x509_certificate(der)
    # `not_valid_after_utc` arrived in cryptography 42; older releases give a naive UTC datetime.
    after = getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after.replace(tzinfo=dt.UTC)
    return float(after.timestamp())


def _stdlib_not_after(der: bytes) -> float:
    """The stdlib decodes certificates only from a PEM file, hence the temporary file."""
    decode = getattr(ssl, "_ssl")._test_decode_cert  # noqa: B009 - private, so absent from typeshed
    fd, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "w") as pem:
            pem.write(ssl.DER_cert_to_PEM_cert(der))
        return float(ssl.cert_time_to_seconds(decode(path)["notAfter"]))
    finally:
        os.unlink(path)


@dataclass
class _PhaseClock:
    """Monotonic times aiohttp's trace hooks record for one request, passed in as its `trace_request_ctx`."""

    phases: dict[str, float] = field(default_factory=dict)
    resolve_started: float | None = None
    create_started: float | None = None
    resolve_before_create: float = 0.0
    connection_ready: float | None = None

    def add(self, phase: str, seconds: float) -> None:
        # Redirects make several connections; blackbox sums each phase over them, so do we.
        self.phases[phase] = self.phases.get(phase, 0.0) + seconds


def _clock(ctx: SimpleNamespace) -> _PhaseClock | None:
    clock = ctx.trace_request_ctx
    return clock if isinstance(clock, _PhaseClock) else None


async def _on_resolve_start(_: aiohttp.ClientSession, ctx: SimpleNamespace, __: object) -> None:
    if clock := _clock(ctx):
        clock.resolve_started = time.perf_counter()


async def _on_resolve_end(_: aiohttp.ClientSession, ctx: SimpleNamespace, __: object) -> None:
    if (clock := _clock(ctx)) and clock.resolve_started is not None:
        clock.add("resolve", time.perf_counter() - clock.resolve_started)


async def _on_create_start(_: aiohttp.ClientSession, ctx: SimpleNamespace, __: object) -> None:
    if clock := _clock(ctx):
        clock.create_started = time.perf_counter()
        clock.resolve_before_create = clock.phases.get("resolve", 0.0)


async def _on_create_end(_: aiohttp.ClientSession, ctx: SimpleNamespace, __: object) -> None:
    # aiohttp resolves, connects and handshakes TLS inside one "create connection" span: take the
    # resolve time out; TCP connect and TLS handshake stay together, since no hook separates them.
    if (clock := _clock(ctx)) and clock.create_started is not None:
        clock.connection_ready = time.perf_counter()
        resolved = clock.phases.get("resolve", 0.0) - clock.resolve_before_create
        clock.add("connect", clock.connection_ready - clock.create_started - resolved)


async def _on_reuse(_: aiohttp.ClientSession, ctx: SimpleNamespace, __: object) -> None:
    if clock := _clock(ctx):
        clock.connection_ready = time.perf_counter()


class _PeerCertSSLObject(ssl.SSLObject):
    def do_handshake(self) -> None:
        super().do_handshake()
        if isinstance(self.context, ProbeTLSContext):
            self.context.peer_cert = self.getpeercert(binary_form=True)


class ProbeTLSContext(ssl.SSLContext):
    """A client TLS context that keeps the server's certificate from its last completed handshake.

    aiohttp releases a connection, transport included, as soon as a small body has arrived, which is often
    before the response reaches the caller; so the certificate is caught at the handshake instead. Reuse
    one for a target's sequential probes; never share one between concurrent probes.
    """

    sslobject_class = _PeerCertSSLObject
    peer_cert: bytes | None = None

    @classmethod
    def for_target(cls, verify: bool) -> ProbeTLSContext:
        """Verified against the system CAs (this costs ~25 ms of CPU), or accepting any certificate."""
        context = cls(ssl.PROTOCOL_TLS_CLIENT)
        if verify:
            context.load_default_certs()
        else:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def probe_trace_config() -> aiohttp.TraceConfig:
    """Hooks that time resolve and connect for requests made with a `_PhaseClock` as trace context."""
    trace = aiohttp.TraceConfig()
    trace.on_dns_resolvehost_start.append(_on_resolve_start)
    trace.on_dns_resolvehost_end.append(_on_resolve_end)
    trace.on_connection_create_start.append(_on_create_start)
    trace.on_connection_create_end.append(_on_create_end)
    trace.on_connection_reuseconn.append(_on_reuse)
    trace.freeze()
    return trace


def probe_session() -> aiohttp.ClientSession:
    """A session that measures like blackbox: a fresh connection and DNS lookup for every probe, traced."""
    connector = aiohttp.TCPConnector(force_close=True, use_dns_cache=False)
    return aiohttp.ClientSession(connector=connector, trace_configs=[probe_trace_config()])


async def probe_once(target: ProbeTargetConfig, session: aiohttp.ClientSession, now: float, *,
                     tls: ProbeTLSContext | None = None) -> list[SeriesBlock]:
    """Probe `target` once; every failure (refused, timeout, TLS, DNS, bad status) becomes `probe_success 0`.

    Phases resolve and connect (TCP connect plus TLS handshake: aiohttp has no hook between them, so no
    separate `tls` phase) come only from sessions made by `probe_session`; processing (connection ready to
    response headers) needs them too; transfer (headers to last body byte) is always measured. A session
    that reuses connections or caches DNS reports no connect or resolve phase for reused ones. `tls`
    defaults to a new context per call; the producer loop passes one per target to spare the CA loading.
    Only the leaf certificate's expiry is reported: Python 3.11's ssl exposes no verified chain.
    """
    if tls is None:
        tls = ProbeTLSContext.for_target(target.verify_tls)
    tls.peer_cert = None
    clock = _PhaseClock()
    status, body = 0, None
    started = time.perf_counter()
    try:
        # One deadline for the whole probe, body included, as blackbox's timeout is.
        async with asyncio.timeout(target.timeout), session.request(
            target.method, target.url, ssl=tls,
            timeout=aiohttp.ClientTimeout(total=None), trace_request_ctx=clock,
        ) as resp:
            headers_at = time.perf_counter()
            status = resp.status
            body = await resp.text(errors="replace")
            if clock.connection_ready is not None:
                clock.add("processing", headers_at - clock.connection_ready)
            clock.add("transfer", time.perf_counter() - headers_at)
    except Exception as exc:  # a failed probe is its result, not the producer's failure
        log.debug("probe %s failed: %s: %s", target.url, type(exc).__name__, exc)
    result = ProbeResult(success=probe_succeeded(target, status, body), status=status,
                         duration=time.perf_counter() - started, phases=clock.phases,
                         cert_not_after=_expiry_or_none(target, tls.peer_cert))
    return probe_series(target, result, now)


def _expiry_or_none(target: ProbeTargetConfig, der: bytes | None) -> float | None:
    """An unparsable certificate loses only its expiry series, not the probe."""
    if not der:
        return None
    try:
        return cert_not_after(der)
    except (ValueError, OSError) as exc:
        log.warning("probe %s: cannot read the certificate's expiry: %s", target.url, exc)
        return None


async def _probe_loop(target: ProbeTargetConfig, session: aiohttp.ClientSession, sender: BatchSink,
                      stop: asyncio.Event) -> None:
    tls = ProbeTLSContext.for_target(target.verify_tls)
    while not stop.is_set():
        now = time.time()
        blocks = await probe_once(target, session, now, tls=tls)
        await sender.send(SampleBatch(source="probe", labels={"job": "probe"}, series=blocks))
        await wait_next_tick(target.interval, stop)


async def run_probe_producer(settings: ProbeProducerConfig, sender: BatchSink, *,
                             stop: asyncio.Event | None = None) -> None:
    """Probe every `settings.targets` (`producers.probe.targets`) entry at its own interval, one batch per
    probe, until `stop`.

    The sender's lifecycle belongs to the caller, so several producers can share one.
    """
    stop = stop or asyncio.Event()
    targets = settings.targets
    if not targets:
        log.info("no probe targets configured; waiting for stop")
        await stop.wait()
        return
    async with probe_session() as session, asyncio.TaskGroup() as group:
        for target in targets:
            group.create_task(_probe_loop(target, session, sender, stop))
    log.info("probe producer stopped after probing %d targets", len(targets))
