"""The push API: metrics that applications and other systems send to Watchkeeper over HTTP.

- `POST /api/v1/samples`: JSON, one `Sample`, one `SampleBatch`, or a list of either.
- `POST|PUT /metrics/job/<job>{/<label>/<value>}`: the Prometheus text format, as the Pushgateway takes it;
  the path's labels are grouping labels on every series.
- `POST /api/v1/write`: Prometheus remote_write 1.0 (snappy-compressed protobuf).

A request is all or nothing: the whole body is validated (schema and every limit of `schemas.limits`)
before any of it is spooled, and a bad body gets a 4xx whose text says exactly what is wrong and names the
reason counted in `watchkeeper_ingest_rejected_total{endpoint,reason}`. remote_write is the exception that
Prometheus' own receiver makes: samples over a per-sample or per-series limit are refused and counted, the
others kept, and the answer is a 400 that says how many were refused and why. Accepted samples go through
the producer's spool, so the answer does not wait on Kafka and a broker outage loses nothing the spool can
hold.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Callable
from functools import partial
from urllib.parse import unquote

import orjson
from aiohttp import web

from watchkeeper.plumbing.http_guard import GuardOptions, check_listener, guard_middleware
from watchkeeper.plumbing.self_metrics import INGEST_ACCEPTED, INGEST_DISCARDED, INGEST_REJECTED, exposition
from watchkeeper.producers.exposition import parse_exposition_counted
from watchkeeper.producers.remote_write import DecodedWrite, decode_write_request
from watchkeeper.producers.sender import BatchSender
from watchkeeper.schemas.codec import SchemaError, sample_batch_of
from watchkeeper.schemas.label_names import is_label_name
from watchkeeper.schemas.limits import (
    BAD_VALUE,
    DECOMPRESSED_TOO_LARGE,
    METRIC_NAME_INVALID,
    STALE_MARKER,
    IngestLimits,
    LimitError,
    check_batches,
    check_json_shape,
    check_source,
    check_text_lines,
)
from watchkeeper.schemas.samples import SampleBatch, SeriesBlock

log = logging.getLogger("watchkeeper.push")
_URLSAFE = str.maketrans("-_", "+/")
SENDER_KEY = web.AppKey("sender", BatchSender)
PUBLIC_PATHS = ("/-/healthy", "/-/ready")  # liveness probes need no token
LIMITS_KEY = web.AppKey("limits", IngestLimits)
Clock = Callable[[], float]
CLOCK_KEY: web.AppKey[Clock] = web.AppKey("clock")
DECODING_KEY = web.AppKey("decoding", asyncio.Semaphore)
# Reasons of refusals that are not limits (docs/ingestion.md, "Ingestion" lists them with the limits').
INVALID = "invalid"
SPOOL_TOO_SMALL = "larger_than_spool"
BODY_TOO_LARGE = "body_too_large"


class Refused(Exception):
    """A request answered with a 4xx: counted under its reason, its text says what is wrong."""

    def __init__(self, status: type[web.HTTPClientError], reason: str, text: str) -> None:
        super().__init__(text)
        self.status, self.reason, self.text = status, reason, text


def _answer(endpoint: str, refused: Refused) -> web.Response:
    INGEST_REJECTED.labels(endpoint, refused.reason).inc()
    return web.Response(status=refused.status.status_code, text=f"{refused.text} (reason: {refused.reason})\n",
                        content_type="text/plain")


async def _body(request: web.Request) -> bytes:
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise Refused(web.HTTPRequestEntityTooLarge, BODY_TOO_LARGE,
                      f"the body is larger than producers.push.max_body_bytes ({exc.text})") from None


def _check(batches: list[SampleBatch], request: web.Request) -> None:
    try:
        check_batches(batches, request.app[LIMITS_KEY], request.app[CLOCK_KEY]())
    except LimitError as exc:
        raise Refused(web.HTTPBadRequest, exc.reason, str(exc)) from None


def _spool(request: web.Request, batches: list[SampleBatch]) -> int:
    """Spool every batch, split to fit Kafka messages, or nothing: every piece is checked before the first is
    written (a refusal after a write would leave half a request spooled)."""
    sender = request.app[SENDER_KEY]
    records = []
    for i, batch in enumerate(batches):
        for key, value, points in sender.records_of(batch):
            if not sender.spool.fits(key, value):
                raise Refused(web.HTTPRequestEntityTooLarge, SPOOL_TOO_SMALL,
                              f"batch {i} ({len(value)} bytes) is larger than the whole spool may hold "
                              f"(producers.spool.max_bytes={sender.spool.max_bytes})")
            records.append((key, value, points))
    for key, value, points in records:
        sender.spool.append(key, value, points)
    sender.wake()
    return sum(points for _, _, points in records)


def _parse_samples_body(body: bytes, source: str) -> list[SampleBatch]:
    """A Sample, a SampleBatch (it has `series`) or a list of them; errors name the item and the field."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Refused(web.HTTPBadRequest, INVALID, f"body is not JSON: {exc}") from None
    items = parsed if isinstance(parsed, list) else [parsed]
    batches: list[SampleBatch] = []
    for i, item in enumerate(items):
        where = f"[{i}] " if isinstance(parsed, list) else ""
        if not isinstance(item, dict):
            raise Refused(web.HTTPBadRequest, INVALID, f"{where}expected a JSON object (a Sample or a SampleBatch), "
                          f"got {type(item).__name__}")
        try:
            batches.append(sample_batch_of(item, source))
        except SchemaError as exc:
            raise Refused(web.HTTPBadRequest, INVALID, f"{where}{exc}") from None
    return batches


async def post_samples(request: web.Request) -> web.Response:
    try:
        source = request.headers.get("X-Watchkeeper-Source", "push")
        body = await _body(request)
        async with request.app[DECODING_KEY]:  # parsing is CPU-bound: off the event loop, a bounded few at once
            batches = await asyncio.get_running_loop().run_in_executor(
                None, _parse_and_check, body, source, request.app[LIMITS_KEY], request.app[CLOCK_KEY]())
        n = _spool(request, batches)
    except Refused as refused:
        return _answer("samples", refused)
    INGEST_ACCEPTED.labels("samples").inc(n)
    return web.json_response({"accepted_samples": n, "batches": len(batches)}, status=202)


def _parse_and_check(body: bytes, source: str, limits: IngestLimits, now: float) -> list[SampleBatch]:
    try:
        check_json_shape(body, limits)
        batches = _parse_samples_body(body, source)
        check_batches(batches, limits, now)
    except LimitError as exc:
        raise Refused(web.HTTPBadRequest, exc.reason, str(exc)) from None
    return batches


def _path_value(text: str, what: str) -> str:
    """A Pushgateway path segment's value: `@base64` ones are URL-safe base64 (padding optional) of UTF-8."""
    try:
        raw = base64.b64decode(text.translate(_URLSAFE) + "=" * (-len(text) % 4), validate=True)
        return raw.decode("utf-8")
    except (binascii.Error, ValueError):
        raise Refused(web.HTTPBadRequest, INVALID, f"{what} is marked @base64 but {text[:100]!r} is not URL-safe "
                      "base64 of UTF-8 text") from None


def _grouping_labels(tail: str) -> dict[str, str]:
    """`/metrics/job/<job>/<label>/<value>...`, Pushgateway's grouping key (values may be `@base64`)."""
    parts = [unquote(p) for p in tail.split("/")]
    if len(parts) % 2:
        raise Refused(web.HTTPBadRequest, INVALID,
                      f"grouping labels must be label/value pairs, got {'/'.join(parts)[:200]!r}")
    labels: dict[str, str] = {}
    for name, value in zip(parts[::2], parts[1::2], strict=True):
        if name.endswith("@base64"):
            name = name[: -len("@base64")]
            value = _path_value(value, f"grouping label {name[:100]!r}")
        if not is_label_name(name) or name.startswith("__"):
            raise Refused(web.HTTPBadRequest, INVALID, f"grouping label name {name[:100]!r} is not a valid label name")
        labels[name] = value
    return labels


async def push_exposition(request: web.Request) -> web.Response:
    try:
        n, skipped = await _push_exposition(request)
    except Refused as refused:
        return _answer("pushgateway", refused)
    INGEST_ACCEPTED.labels("pushgateway").inc(n)
    if skipped:
        INGEST_DISCARDED.labels("pushgateway", BAD_VALUE).inc(skipped)
    return web.json_response({"accepted_samples": n, "skipped_samples": skipped}, status=200)


async def _push_exposition(request: web.Request) -> tuple[int, int]:
    job = unquote(request.match_info["job"])
    if request.path.startswith("/metrics/job@base64/"):
        job = _path_value(job, "the job")
    if not job:
        raise Refused(web.HTTPBadRequest, INVALID, "the job name in /metrics/job/<job> is empty")
    tail = request.match_info.get("labels", "").strip("/")
    labels = {"job": job, **(_grouping_labels(tail) if tail else {})}
    text = (await _body(request)).decode("utf-8", "replace")
    openmetrics = "openmetrics" in request.headers.get("Content-Type", "")
    try:
        check_text_lines(text, request.app[LIMITS_KEY])
    except LimitError as exc:
        raise Refused(web.HTTPBadRequest, exc.reason, str(exc)) from None
    async with request.app[DECODING_KEY]:
        try:
            parsed = await asyncio.get_running_loop().run_in_executor(
                None, partial(parse_exposition_counted, text, request.app[CLOCK_KEY](), labels,
                              openmetrics=openmetrics))
        except ValueError as exc:
            raise Refused(web.HTTPBadRequest, INVALID, f"invalid text exposition: {exc}") from None
    if parsed.invalid_names:
        raise Refused(web.HTTPBadRequest, METRIC_NAME_INVALID,
                      f"{parsed.invalid_names} samples have a metric name or label name that is not Prometheus' "
                      "syntax ([a-zA-Z_:][a-zA-Z0-9_:]* and [a-zA-Z_][a-zA-Z0-9_]*)")
    source = f"push/{job}"
    try:
        check_source(source, request.app[LIMITS_KEY])
    except LimitError as exc:
        raise Refused(web.HTTPBadRequest, exc.reason, f"the job name makes the source push/<job>: {exc}") from None
    # Non-finite values are skipped (JSON cannot carry them; a summary without observations exposes NaN
    # quantiles, so refusing the push would refuse real clients) and counted.
    non_finite = parsed.skipped - parsed.invalid_names
    batch = SampleBatch(source=source, series=parsed.blocks)
    _check([batch], request)
    return _spool(request, [batch]), non_finite


async def remote_write(request: web.Request) -> web.Response:
    try:
        body = await _body(request)
        async with request.app[DECODING_KEY]:  # decoding is CPU-bound: off the event loop, a bounded few at once
            decoded = await asyncio.get_running_loop().run_in_executor(
                None, _decode_remote_write, body, request.app[LIMITS_KEY], request.app[CLOCK_KEY]())
        batches = remote_write_batches(decoded.blocks, request.app[LIMITS_KEY].max_source_length)
        n = _spool(request, batches) if batches else 0
    except Refused as refused:
        return _answer("remote_write", refused)
    INGEST_ACCEPTED.labels("remote_write").inc(n)
    if decoded.stale:
        INGEST_DISCARDED.labels("remote_write", STALE_MARKER).inc(decoded.stale)
    if decoded.skipped:
        INGEST_DISCARDED.labels("remote_write", "native_histogram").inc(decoded.skipped)
    if not decoded.refused:
        return web.Response(status=204)
    for reason, count in decoded.refused.items():
        INGEST_DISCARDED.labels("remote_write", reason).inc(count)
    INGEST_REJECTED.labels("remote_write", "partial").inc()
    refused_count = sum(decoded.refused.values())
    reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(decoded.refused.items()))
    # As Prometheus' receiver answers out-of-bounds samples: 400 (the sender does not retry), the rest kept.
    return web.Response(status=400, content_type="text/plain",
                        text=f"{refused_count} samples refused ({reasons}); {n} accepted. "
                             f"First: {decoded.first_refusal}\n")


def remote_write_batches(blocks: list[SeriesBlock], max_source_length: int) -> list[SampleBatch]:
    """One batch per sending host: its `instance` (else `host`) label is the batch's source, so each host
    keeps its own event-time watermark in the worker (DESIGN, Time) and one host's clock cannot make another
    host's samples late. Series with neither label share the source `remote_write`."""
    by_source: dict[str, list[SeriesBlock]] = {}
    for block in blocks:
        source = block.labels.get("instance") or block.labels.get("host") or "remote_write"
        if len(source.encode()) > max_source_length:  # a label value may be longer than a source may
            source = "remote_write"
        by_source.setdefault(source, []).append(block)
    return [SampleBatch.model_construct(v=1, source=source, labels={}, series=series)
            for source, series in by_source.items()]


def _decode_remote_write(body: bytes, limits: IngestLimits, now: float) -> DecodedWrite:
    try:
        return decode_write_request(body, limits, now)
    except LimitError as exc:
        status = web.HTTPRequestEntityTooLarge if exc.reason == DECOMPRESSED_TOO_LARGE else web.HTTPBadRequest
        raise Refused(status, exc.reason, f"remote_write request refused: {exc}") from None
    except ValueError as exc:
        raise Refused(web.HTTPBadRequest, INVALID, f"invalid remote_write request: {exc}") from None


async def own_metrics(_: web.Request) -> web.Response:
    """Watchkeeper's own metrics, the ingest counters among them (GET /metrics, as the Pushgateway has)."""
    return web.Response(body=exposition(), content_type="text/plain", charset="utf-8")


async def healthy(_: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def create_push_app(sender: BatchSender, *, token: str = "", max_body_bytes: int = 32 * 2**20,
                    host: str = "127.0.0.1", allowed_hosts: tuple[str, ...] = (),
                    limits: IngestLimits | None = None, clock: Callable[[], float] = time.time,
                    parallel_decodes: int = 2) -> web.Application:
    """The push API for a listener on `host`: off loopback `token` is required (`plumbing.http_guard`);
    `limits` bound every request (`Config.ingest_limits()`), `clock` is the receiving time."""
    check_listener("producers.push", host, token, "WK_PUSH_TOKEN")
    guard = GuardOptions("producers.push", host, token, allowed_hosts, public_paths=frozenset(PUBLIC_PATHS),
                         realm="watchkeeper push")
    app = web.Application(middlewares=[guard_middleware(guard)], client_max_size=max_body_bytes)
    app[SENDER_KEY] = sender
    app[LIMITS_KEY] = limits or IngestLimits()
    app[CLOCK_KEY] = clock
    app[DECODING_KEY] = asyncio.Semaphore(parallel_decodes)
    app.router.add_post("/api/v1/samples", post_samples)
    app.router.add_post("/api/v1/write", remote_write)
    for method in ("POST", "PUT"):
        app.router.add_route(method, "/metrics/job/{job}", push_exposition)
        app.router.add_route(method, "/metrics/job/{job}/{labels:.*}", push_exposition)
        app.router.add_route(method, "/metrics/job@base64/{job}", push_exposition)
        app.router.add_route(method, "/metrics/job@base64/{job}/{labels:.*}", push_exposition)
    app.router.add_get("/metrics", own_metrics)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", healthy)
    return app
