"""The push API: metrics that applications and other systems send to Watchkeeper over HTTP.

- `POST /api/v1/samples`: JSON, one `Sample`, one `SampleBatch`, or a list of either.
- `POST|PUT /metrics/job/<job>{/<label>/<value>}`: the Prometheus text format, as the Pushgateway takes it;
  the path's labels are grouping labels on every series.
- `POST /api/v1/write`: Prometheus remote_write 1.0 (snappy-compressed protobuf).

A request is all or nothing: the whole body is validated before any of it is spooled, and a bad body gets
a 4xx whose text says exactly what is wrong. Accepted samples go through the producer's spool, so the
answer does not wait on Kafka and a broker outage loses nothing the spool can hold.
"""

from __future__ import annotations

import base64
import logging
import math
import re
import time
from urllib.parse import unquote

import orjson
from aiohttp import web

from producers.exposition import parse_exposition
from producers.remote_write import decode_write_request
from producers.sender import BatchSender
from schemas.codec import SchemaError, encode, sample_batch_of
from schemas.samples import SampleBatch
from watchkeeper.http_guard import GuardOptions, check_listener, guard_middleware

log = logging.getLogger("watchkeeper.push")
_LABEL_OK = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
SENDER_KEY = web.AppKey("sender", BatchSender)
PUBLIC_PATHS = ("/-/healthy", "/-/ready")  # liveness probes need no token


def _bad(status: type[web.HTTPClientError], text: str) -> web.HTTPClientError:
    return status(text=text + "\n", content_type="text/plain")


def _check_finite(batches: list[SampleBatch]) -> None:
    for i, batch in enumerate(batches):
        for j, block in enumerate(batch.series):
            for k, (ts, value) in enumerate(zip(block.ts, block.values, strict=True)):
                if not (math.isfinite(value) and math.isfinite(ts) and ts >= 0):
                    raise _bad(web.HTTPBadRequest, f"batch {i} series {j} ({block.name}) point {k}: "
                               f"ts and value must be finite numbers, ts >= 0 (got ts={ts}, value={value})")


async def _spool(request: web.Request, batches: list[SampleBatch], source: str) -> int:
    sender = request.app[SENDER_KEY]
    encoded = [((b.source or source).encode(), encode(b), b.point_count()) for b in batches]
    for i, (key, value, _) in enumerate(encoded):  # before anything is spooled: all or nothing
        if not sender.spool.fits(key, value):
            raise web.HTTPRequestEntityTooLarge(
                max_size=sender.spool.max_bytes, actual_size=len(key) + len(value), content_type="text/plain",
                text=f"batch {i} ({len(value)} bytes) is larger than the whole spool may hold\n")
    for key, value, points in encoded:
        await sender.send_encoded(key, value, points)
    return sum(points for _, _, points in encoded)


def _parse_samples_body(body: bytes, source: str) -> list[SampleBatch]:
    """A Sample, a SampleBatch (it has `series`) or a list of them; errors name the item and the field."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _bad(web.HTTPBadRequest, f"body is not JSON: {exc}") from None
    items = parsed if isinstance(parsed, list) else [parsed]
    batches: list[SampleBatch] = []
    for i, item in enumerate(items):
        where = f"[{i}] " if isinstance(parsed, list) else ""
        if not isinstance(item, dict):
            raise _bad(web.HTTPBadRequest, f"{where}expected a JSON object (a Sample or a SampleBatch), "
                       f"got {type(item).__name__}")
        try:
            batches.append(sample_batch_of(item, source))
        except SchemaError as exc:
            raise _bad(web.HTTPBadRequest, f"{where}{exc}") from None
    return batches


async def post_samples(request: web.Request) -> web.Response:
    source = request.headers.get("X-Watchkeeper-Source", "push")
    batches = _parse_samples_body(await request.read(), source)
    _check_finite(batches)
    n = await _spool(request, batches, source)
    return web.json_response({"accepted_samples": n, "batches": len(batches)}, status=202)


def _grouping_labels(tail: str) -> dict[str, str]:
    """`/metrics/job/<job>/<label>/<value>...`, Pushgateway's grouping key (values may be `@base64`)."""
    parts = [unquote(p) for p in tail.split("/")]
    if len(parts) % 2:
        raise _bad(web.HTTPBadRequest, f"grouping labels must be label/value pairs, got {'/'.join(parts)!r}")
    labels: dict[str, str] = {}
    for name, value in zip(parts[::2], parts[1::2], strict=True):
        if name.endswith("@base64"):
            name = name[: -len("@base64")]
            value = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        if not _LABEL_OK.match(name) or name.startswith("__"):
            raise _bad(web.HTTPBadRequest, f"grouping label name {name!r} is not a valid label name")
        labels[name] = value
    return labels


async def push_exposition(request: web.Request) -> web.Response:
    job = unquote(request.match_info["job"])
    if not job:
        raise _bad(web.HTTPBadRequest, "the job name in /metrics/job/<job> is empty")
    tail = request.match_info.get("labels", "").strip("/")
    labels = {"job": job, **(_grouping_labels(tail) if tail else {})}
    text = (await request.read()).decode("utf-8", "replace")
    openmetrics = "openmetrics" in request.headers.get("Content-Type", "")
    try:
        blocks = parse_exposition(text, time.time(), labels, openmetrics=openmetrics)
    except ValueError as exc:
        raise _bad(web.HTTPBadRequest, f"invalid text exposition: {exc}") from None
    batch = SampleBatch(source=f"push/{job}", series=blocks)
    _check_finite([batch])
    n = await _spool(request, [batch], f"push/{job}")
    return web.json_response({"accepted_samples": n}, status=200)


async def remote_write(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        blocks, skipped = decode_write_request(body)
    except ValueError as exc:
        raise _bad(web.HTTPBadRequest, f"invalid remote_write request: {exc}") from None
    if blocks:
        await _spool(request, [SampleBatch.model_construct(v=1, source="remote_write", labels={}, series=blocks)],
                     "remote_write")
    if skipped:
        log.debug("remote_write: skipped %d stale or non-finite samples", skipped)
    return web.Response(status=204)


async def healthy(_: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def create_push_app(sender: BatchSender, *, token: str = "", max_body_bytes: int = 32 * 2**20,
                    host: str = "127.0.0.1", allowed_hosts: tuple[str, ...] = ()) -> web.Application:
    """The push API for a listener on `host`: off loopback `token` is required (`watchkeeper.http_guard`)."""
    check_listener("producers.push", host, token, "WK_PUSH_TOKEN")
    guard = GuardOptions("producers.push", host, token, allowed_hosts, public_paths=frozenset(PUBLIC_PATHS),
                         realm="watchkeeper push")
    app = web.Application(middlewares=[guard_middleware(guard)], client_max_size=max_body_bytes)
    app[SENDER_KEY] = sender
    app.router.add_post("/api/v1/samples", post_samples)
    app.router.add_post("/api/v1/write", remote_write)
    for method in ("POST", "PUT"):
        app.router.add_route(method, "/metrics/job/{job}", push_exposition)
        app.router.add_route(method, "/metrics/job/{job}/{labels:.*}", push_exposition)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", healthy)
    return app
