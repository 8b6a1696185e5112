"""Bounds on what ingestion takes, as pure functions: the push API, remote_write and scrape call them, and so
may the worker's decode (the limits are data passed in, never read from a config or a clock here).

The defaults are Prometheus' and Mimir's where they have one (`max_label_names_per_series` 30,
`max_label_name_length` 1,024, `max_label_value_length` 2,048 bytes); the others are sized so that one
request fits comfortably in one Kafka message after the producers split it. Every refusal carries a
`reason`, the short name a user sees in the 4xx text and in `watchkeeper_ingest_rejected_total{reason}`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from watchkeeper.schemas.label_names import LABEL_NAME, METRIC_NAME, METRIC_NAME_SYNTAX
from watchkeeper.schemas.samples import LABEL_NAME_PATTERN, SampleBatch, SeriesBlock

label_name_ok = LABEL_NAME.fullmatch
metric_name_ok = METRIC_NAME.fullmatch

# The largest epoch second that int64 nanoseconds can hold (2262-04-11): ClickHouse's DateTime64(9) and
# every Go-based peer (Prometheus, Alertmanager) keep time in that range. The worker's bounds are these
# (core/sample_rejects.py imports them), so nothing taken here is refused there.
MAX_EPOCH_SECONDS = 9_223_372_036.0
# Values beyond this would overflow a window's sum (10^8 of them still sum to a finite float64).
MAX_ABS_VALUE = 1e300
# Prometheus' staleness marker (`value.StaleNaN`): a NaN with this exact bit pattern.
STALE_NAN_BITS = 0x7FF0000000000002
_DOUBLE = struct.Struct("<d")
_U64 = struct.Struct("<Q")

# The reason names, as users see them.
FUTURE = "future"
BAD_TIMESTAMP = "bad_timestamp"
BAD_VALUE = "bad_value"
STALE_MARKER = "stale_marker"
METRIC_NAME_INVALID = "metric_name_invalid"
LABEL_NAME_INVALID = "label_name_invalid"
TOO_MANY_LABELS = "too_many_labels"
LABEL_NAME_TOO_LONG = "label_name_too_long"
LABEL_VALUE_TOO_LONG = "label_value_too_long"
SOURCE_TOO_LONG = "source_too_long"
TOO_MANY_SERIES = "too_many_series"
TOO_MANY_POINTS = "too_many_points"
DECOMPRESSED_TOO_LARGE = "decompressed_too_large"


@dataclass(frozen=True, slots=True)
class IngestLimits:
    """What one ingestion request may hold. `max_future` is the worker's `windows.max_future`: one knob."""

    max_future: float = 600.0
    max_label_names_per_series: int = 30  # the metric name counts as one, as `__name__` does in Prometheus
    max_label_name_length: int = 1024
    max_label_value_length: int = 2048  # UTF-8 bytes; also bounds the metric name
    max_source_length: int = 256
    max_series_per_request: int = 10_000
    max_points_per_request: int = 100_000
    max_decompressed_bytes: int = 32 * 2**20


class LimitError(ValueError):
    """An input over a limit; `reason` is its short name, the message says where and what to do."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def is_stale_marker(value: float) -> bool:
    return value != value and _U64.unpack(_DOUBLE.pack(value))[0] == STALE_NAN_BITS


def check_source(source: str, limits: IngestLimits) -> None:
    if utf8_length(source) > limits.max_source_length:
        raise LimitError(SOURCE_TOO_LONG, f"source is {utf8_length(source)} bytes long, more than "
                                          f"max_source_length={limits.max_source_length}")


def series_problem(name: str, labels: Mapping[str, str], limits: IngestLimits) -> tuple[str, str] | None:
    """`(reason, message)` for a series over a label limit or with a bad name, else None.

    `labels` are the series' full label set (a batch's common labels included), without `__name__`.
    """
    if not metric_name_ok(name):
        return METRIC_NAME_INVALID, f"{name[:100]!r} is not a valid metric name (expected {METRIC_NAME_SYNTAX})"
    if utf8_length(name) > limits.max_label_value_length:
        return LABEL_VALUE_TOO_LONG, (f"metric name is {utf8_length(name)} bytes long, more than "
                                      f"max_label_value_length={limits.max_label_value_length}")
    if len(labels) + 1 > limits.max_label_names_per_series:
        return TOO_MANY_LABELS, (f"{len(labels) + 1} label names (the metric name included), more than "
                                 f"max_label_names_per_series={limits.max_label_names_per_series}")
    for key, value in labels.items():
        if len(key) > limits.max_label_name_length:
            return LABEL_NAME_TOO_LONG, (f"label name {key[:50]!r}... is {len(key)} characters long, more than "
                                         f"max_label_name_length={limits.max_label_name_length}")
        if not label_name_ok(key):
            return LABEL_NAME_INVALID, f"label name {key[:100]!r} is not valid (expected {LABEL_NAME_PATTERN})"
        if len(value) * 4 > limits.max_label_value_length and utf8_length(value) > limits.max_label_value_length:
            return LABEL_VALUE_TOO_LONG, (f"label {key}'s value is {utf8_length(value)} bytes long, more than "
                                          f"max_label_value_length={limits.max_label_value_length}")
    return None


def point_problem(ts: float, value: float, limits: IngestLimits, now: float) -> str | None:
    """The reason one point is refused, or None; staleness markers are `stale_marker` (callers may drop them)."""
    if not (math.isfinite(ts) and 0 <= ts <= MAX_EPOCH_SECONDS):
        return BAD_TIMESTAMP
    if ts > now + limits.max_future:
        return FUTURE
    if not math.isfinite(value):
        return STALE_MARKER if is_stale_marker(value) else BAD_VALUE
    if abs(value) > MAX_ABS_VALUE:
        return BAD_VALUE
    return None


def points_ok(ts: Sequence[float], values: Sequence[float], limits: IngestLimits, now: float) -> bool:
    """True when every point passes `point_problem`: one `sum`, `min` and `max` instead of a test per point."""
    if not ts:
        return True
    total = sum(ts) + sum(values)
    return (math.isfinite(total) and min(ts) >= 0 and max(ts) <= min(now + limits.max_future, MAX_EPOCH_SECONDS)
            and min(values) >= -MAX_ABS_VALUE and max(values) <= MAX_ABS_VALUE)


def describe_point_problem(reason: str, ts: float, value: float, limits: IngestLimits, now: float) -> str:
    if reason == FUTURE:
        return (f"ts={ts!r} is {ts - now:.0f} s ahead of this server's clock, more than "
                f"windows.max_future={limits.max_future:g} s")
    if reason == BAD_TIMESTAMP:
        return f"ts={ts!r} is not an epoch time in seconds between 0 and {MAX_EPOCH_SECONDS:.0f} (year 2262)"
    return f"value={value!r} is not a finite number within ±{MAX_ABS_VALUE:g}"


def check_series_points(ts: Sequence[float], values: Sequence[float], limits: IngestLimits,
                        now: float) -> None:
    """Raise `LimitError` naming the first bad point of a series (all or nothing callers)."""
    if points_ok(ts, values, limits, now):
        return
    for k, (t, v) in enumerate(zip(ts, values, strict=False)):
        reason = point_problem(t, v, limits, now)
        if reason is not None:
            raise LimitError(reason, f"point {k}: {describe_point_problem(reason, t, v, limits, now)}")


def check_request_size(series: int, points: int, limits: IngestLimits) -> None:
    if series > limits.max_series_per_request:
        raise LimitError(TOO_MANY_SERIES, f"{series} series in one request, more than max_series_per_request="
                                          f"{limits.max_series_per_request}; send them in several requests")
    if points > limits.max_points_per_request:
        raise LimitError(TOO_MANY_POINTS, f"{points} points in one request, more than max_points_per_request="
                                          f"{limits.max_points_per_request}; send them in several requests")


def check_batches(batches: Sequence[SampleBatch], limits: IngestLimits, now: float) -> None:
    """Every limit over a whole request of batches; `LimitError` names the batch, the series and the point."""
    check_request_size(sum(len(b.series) for b in batches), sum(b.point_count() for b in batches), limits)
    for i, batch in enumerate(batches):
        where = f"batch {i} " if len(batches) > 1 else ""
        try:
            check_source(batch.source, limits)
        except LimitError as exc:
            raise LimitError(exc.reason, f"{where}{exc}") from None
        for j, block in enumerate(batch.series):
            labels = {**batch.labels, **block.labels} if batch.labels else block.labels
            problem = series_problem(block.name, labels, limits)
            if problem is not None:
                raise LimitError(problem[0], f"{where}series {j} ({block.name[:100]}): {problem[1]}")
            try:
                check_series_points(block.ts, block.values, limits, now)
            except LimitError as exc:
                raise LimitError(exc.reason, f"{where}series {j} ({block.name[:100]}): {exc}") from None


def keep_within(blocks: Sequence[SeriesBlock], limits: IngestLimits,
                now: float) -> tuple[list[SeriesBlock], dict[str, int]]:
    """The series and points of `blocks` that pass every per-series and per-point limit, and how many points
    were left out by reason: for sources that take what they can (a scrape), not all or nothing."""
    kept: list[SeriesBlock] = []
    dropped: dict[str, int] = {}
    for block in blocks:
        problem = series_problem(block.name, block.labels, limits)
        if problem is not None:
            dropped[problem[0]] = dropped.get(problem[0], 0) + len(block.ts)
            continue
        if points_ok(block.ts, block.values, limits, now):
            kept.append(block)
            continue
        ts: list[float] = []
        values: list[float] = []
        for t, v in zip(block.ts, block.values, strict=True):
            reason = point_problem(t, v, limits, now)
            if reason is None:
                ts.append(t)
                values.append(v)
            else:
                dropped[reason] = dropped.get(reason, 0) + 1
        if ts:
            kept.append(SeriesBlock.model_construct(name=block.name, labels=block.labels, kind=block.kind, ts=ts,
                                                    values=values))
    return kept, dropped


def check_json_shape(body: bytes, limits: IngestLimits) -> None:
    """Refuse a JSON body with more arrays, objects or elements than a request within the limits can have,
    before it is parsed: 33 MB of `[[],[],...]` parse into 11 M lists (~970 MiB, seconds of CPU).

    A request of S series and P points has at most 7 S + 1 arrays and objects (a batch, its labels and
    series; a series, its labels, ts and values) and at most 2 P + 64 S commas. Counting bytes overcounts
    brackets and commas inside strings, so only requests near the bounds with such strings are refused
    early; the message says so.
    """
    containers = body.count(b"[") + body.count(b"{")
    bound = 7 * limits.max_series_per_request + 1
    if containers > bound:
        raise LimitError(TOO_MANY_SERIES, f"the body has {containers} JSON arrays and objects (brackets inside "
                                          f"strings included); a request within max_series_per_request="
                                          f"{limits.max_series_per_request} has at most {bound}")
    commas = body.count(b",")
    bound = 2 * limits.max_points_per_request + 64 * limits.max_series_per_request
    if commas > bound:
        raise LimitError(TOO_MANY_POINTS, f"the body has {commas} JSON elements (commas inside strings "
                                          f"included); a request within max_points_per_request="
                                          f"{limits.max_points_per_request} has at most {bound}")


def check_text_lines(text: str, limits: IngestLimits) -> None:
    """Refuse a text exposition with more lines than a request within the limits can have, before it is
    parsed: the client parser builds ~500 bytes of objects per sample line (4 MB of `m 1` lines took
    522 MiB and 24 s). One line per sample plus a HELP and a TYPE line per family: at most 3 P + 1."""
    lines = text.count("\n")
    bound = 3 * limits.max_points_per_request + 1
    if lines > bound:
        raise LimitError(TOO_MANY_POINTS, f"the exposition has {lines} lines; a request within "
                                          f"max_points_per_request={limits.max_points_per_request} has at "
                                          f"most {bound}")
