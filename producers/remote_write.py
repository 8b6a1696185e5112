"""Prometheus remote_write 1.0: a snappy block-compressed protobuf `prometheus.WriteRequest`, as `SeriesBlock`s.

The message classes are built at import time from a descriptor written here in Python, so neither protoc nor
generated code is needed. Only what we read is declared (field numbers as in Prometheus' `prompb/types.proto`
and `prompb/remote.proto`); exemplars (TimeSeries field 3) stay unknown fields, and native histograms
(field 4) are declared as an empty message only so that they can be counted as skipped.

Decoding is the push API's hot path, so blocks are built with `SeriesBlock.model_construct`: metric and label
names are checked here once per distinct name with compiled regexes, and points are checked against the
limits per series in one `sum`/`min`/`max`, instead of pydantic validating every block and every point again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from watchkeeper.schemas.label_names import METRIC_NAME, is_label_name
from watchkeeper.schemas.limits import (
    DECOMPRESSED_TOO_LARGE,
    MAX_ABS_VALUE,
    MAX_EPOCH_SECONDS,
    STALE_MARKER,
    IngestLimits,
    LimitError,
    check_request_size,
    describe_point_problem,
    point_problem,
    points_ok,
    series_problem,
)
from watchkeeper.schemas.samples import METRIC_NAME_PATTERN, SampleKind, SeriesBlock

_NAME_OK = METRIC_NAME.fullmatch
# Prometheus' label name rule, as producers/exposition.py applies it, so both ingestion paths agree.
_COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket")
# prompb MetricMetadata.MetricType.
_METRIC_TYPES = {
    "unknown": 0, "counter": 1, "gauge": 2, "histogram": 3, "gaugehistogram": 4, "summary": 5, "info": 6,
    "stateset": 7,
}
_COUNTER, _GAUGE, _GAUGEHISTOGRAM, _SUMMARY = (
    _METRIC_TYPES[t] for t in ("counter", "gauge", "gaugehistogram", "summary")
)
# Snappy's densest element is a 3-byte copy of 64 bytes, so no valid block expands more than 64/3 times.
_MAX_SNAPPY_RATIO = 22
_NAME_VALUE = attrgetter("name", "value")
# Passed to model_construct so it need not build a set per block; pydantic copies it before any update.
_BLOCK_FIELDS = {"name", "labels", "kind", "ts", "values"}
_NOT_SNAPPY = (
    "body is not snappy-compressed (block format); remote_write 1.0 sends a protobuf WriteRequest compressed "
    "with snappy's block format and 'Content-Encoding: snappy', not the framed/stream format or gzip "
)


class RemoteWriteError(ValueError):
    """A remote_write body that cannot be taken; the message says which series or layer is wrong."""


def _build_messages() -> dict[str, Any]:
    """The prompb messages we read, from a hand-written descriptor in a private pool (no clash with others')."""
    F = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="watchkeeper/prompb_remote_write_v1.proto", package="prometheus", syntax="proto3"
    )

    def message(name: str, *fields: tuple[str, int, int, int, str]) -> None:
        msg = proto.message_type.add(name=name)
        for field_name, number, label, kind, type_name in fields:
            added = msg.field.add(name=field_name, number=number, label=label, type=kind)
            if type_name:
                added.type_name = type_name

    one, many = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    message("WriteRequest",
            ("timeseries", 1, many, F.TYPE_MESSAGE, ".prometheus.TimeSeries"),
            ("metadata", 3, many, F.TYPE_MESSAGE, ".prometheus.MetricMetadata"))
    message("TimeSeries",
            ("labels", 1, many, F.TYPE_MESSAGE, ".prometheus.Label"),
            ("samples", 2, many, F.TYPE_MESSAGE, ".prometheus.Sample"),
            ("histograms", 4, many, F.TYPE_MESSAGE, ".prometheus.Histogram"))
    message("Label", ("name", 1, one, F.TYPE_STRING, ""), ("value", 2, one, F.TYPE_STRING, ""))
    message("Sample", ("value", 1, one, F.TYPE_DOUBLE, ""), ("timestamp", 2, one, F.TYPE_INT64, ""))
    message("Histogram")
    message("MetricMetadata",
            ("type", 1, one, F.TYPE_INT32, ""),
            ("metric_family_name", 2, one, F.TYPE_STRING, ""),
            ("help", 4, one, F.TYPE_STRING, ""),
            ("unit", 5, one, F.TYPE_STRING, ""))
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(proto.SerializeToString())
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"prometheus.{name}"))
        for name in ("WriteRequest", "TimeSeries", "Label", "Sample", "MetricMetadata")
    }


_MESSAGES = _build_messages()
WriteRequest: Any = _MESSAGES["WriteRequest"]
Label: Any = _MESSAGES["Label"]
Sample: Any = _MESSAGES["Sample"]


@dataclass
class DecodedWrite:
    """The series of one request, and what was left out of it.

    `skipped`: native histograms of series without float samples (our JSON wire cannot carry them);
    `stale`: Prometheus staleness markers, dropped (the windows close series by time, not by marker);
    `refused`: samples over a limit (reason -> count), with the first one described in `first_refusal`:
    the request's other samples are still taken, as Prometheus' own receiver does with out-of-bounds ones.
    """

    blocks: list[SeriesBlock] = field(default_factory=list)
    skipped: int = 0
    stale: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    first_refusal: str = ""

    def refuse(self, reason: str, count: int, message: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + count
        if not self.first_refusal:
            self.first_refusal = message


def decode_write_request(body: bytes, limits: IngestLimits, now: float) -> DecodedWrite:
    """The series of one request; timestamps are epoch milliseconds on the wire and float seconds in the blocks.

    Raises `LimitError` when the request as a whole is over a limit (decompressed size, series, points) and
    `RemoteWriteError` when it is malformed (not snappy, not a WriteRequest, a series without a name or with
    an invalid or repeated label name, a timestamp before 1970): nothing of it is taken then. Samples and
    series over a per-sample or per-series limit are refused one by one (see `DecodedWrite`).
    """
    raw = _decompress(body, limits.max_decompressed_bytes)
    _count_before_parsing(raw, limits)
    request = _parse(raw)
    timeseries = request.timeseries
    family_types: dict[str, int] = {meta.metric_family_name: meta.type for meta in request.metadata}
    kinds: dict[str, SampleKind] = {}  # also the set of metric names already checked
    label_names_ok: set[str] = set()
    out = DecodedWrite()
    max_names, max_key, max_value = (limits.max_label_names_per_series, limits.max_label_name_length,
                                     limits.max_label_value_length)
    newest = min(now + limits.max_future, MAX_EPOCH_SECONDS)  # timestamps are >= 0 here (checked above)
    for index, series in enumerate(timeseries):
        name, labels = _name_and_labels(index, series.labels, label_names_ok)
        kind = kinds.get(name)
        if kind is None:
            if not _NAME_OK(name):
                raise RemoteWriteError(
                    f"series {index} {_describe(series.labels)}: {name!r} is not a valid metric name "
                    f"(expected {METRIC_NAME_PATTERN})"
                )
            kind = kinds[name] = _kind(name, family_types)
        samples = series.samples
        if len(samples) == 1:  # what Prometheus sends: one sample per series per request
            only = samples[0]
            values, stamps = [only.value], [only.timestamp]
        elif samples:
            samples = list(samples)  # one wrapper object per sample, not one per sample per column
            values = [sample.value for sample in samples]
            stamps = [sample.timestamp for sample in samples]
        else:
            # Prometheus sends native histograms in series of their own, so only sample-less series are looked at.
            out.skipped += len(series.histograms)
            continue
        if min(stamps) < 0:
            raise RemoteWriteError(
                f"series {index} {_describe(series.labels)}: timestamp {min(stamps)} ms is before 1970; "
                "remote_write timestamps are epoch milliseconds"
            )
        # Bounds checked with C-level len/max first; the exact (slower) check only for a series near them.
        if (len(labels) >= max_names or len(name) * 4 > max_value
                or (labels and (max(map(len, labels.values())) * 4 > max_value or max(map(len, labels)) > max_key))):
            problem = series_problem(name, labels, limits)
            if problem is not None:
                out.refuse(problem[0], len(values), f"series {index} {_describe(series.labels)}: {problem[1]}")
                continue
        if len(stamps) == 1:
            seconds = [stamps[0] / 1000]
            fine = seconds[0] <= newest and -MAX_ABS_VALUE <= values[0] <= MAX_ABS_VALUE  # NaN compares False
        else:
            seconds = [stamp / 1000 for stamp in stamps]
            fine = points_ok(seconds, values, limits, now)
        if not fine:
            seconds, values = _keep_good_points(out, index, series.labels, seconds, values, limits, now)
            if not values:
                continue
        out.blocks.append(SeriesBlock.model_construct(
            _BLOCK_FIELDS, name=name, labels=labels, kind=kind, ts=seconds, values=values
        ))
    return out


def _keep_good_points(out: DecodedWrite, index: int, raw_labels: Any, seconds: list[float], values: list[float],
                      limits: IngestLimits, now: float) -> tuple[list[float], list[float]]:
    keep_ts: list[float] = []
    keep_values: list[float] = []
    for ts, value in zip(seconds, values, strict=True):
        reason = point_problem(ts, value, limits, now)
        if reason is None:
            keep_ts.append(ts)
            keep_values.append(value)
        elif reason == STALE_MARKER:
            out.stale += 1
        else:
            out.refuse(reason, 1, f"series {index} {_describe(raw_labels)}: "
                                  f"{describe_point_problem(reason, ts, value, limits, now)}")
    return keep_ts, keep_values


def encode_write_request(
    series: Iterable[tuple[Mapping[str, str], Iterable[tuple[int, float]]]],
    metadata: Mapping[str, str] | None = None,
) -> bytes:
    """A remote_write body as Prometheus sends it, for tests and benchmarks.

    Each series is its labels (with `__name__`) and its `(timestamp_ms, value)` samples; labels are sent
    sorted by name, as Prometheus does. `metadata` maps a metric family to its type (`"counter"`, ...).
    """
    request = WriteRequest()
    for labels, samples in series:
        out = request.timeseries.add()
        out.labels.extend(Label(name=key, value=labels[key]) for key in sorted(labels))
        out.samples.extend(Sample(value=value, timestamp=stamp) for stamp, value in samples)
    for family, type_name in (metadata or {}).items():
        request.metadata.add(metric_family_name=family, type=_METRIC_TYPES[type_name])
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def _decompress(body: bytes, max_bytes: int) -> bytes:
    # The block format starts with the decoded length, and the decoder writes exactly that many bytes or
    # fails: bounding the header bounds the memory before anything is allocated (a lying header asking for
    # more than there is aborts the process in the decoder, it does not raise).
    declared = _snappy_declared_length(body)
    if declared is None or declared > _MAX_SNAPPY_RATIO * len(body):
        raise RemoteWriteError(_NOT_SNAPPY + "(no valid length header)")
    if declared > max_bytes:
        raise LimitError(DECOMPRESSED_TOO_LARGE, f"the body decompresses to {declared} bytes, more than "
                                                 f"max_decompressed_bytes={max_bytes}; send smaller requests "
                                                 "(Prometheus: queue_config.max_samples_per_send)")
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        raise RemoteWriteError(_NOT_SNAPPY + f"({exc})") from None


def _count_before_parsing(raw: bytes, limits: IngestLimits) -> None:
    """Refuse too many series or samples from the wire bytes, before protobuf builds objects for them.

    A decompressed-size bound alone is not enough: 32 MiB of empty series (two bytes each) parse into 16 M
    messages, ~800 MiB of memory and 3 s of CPU. This walks WriteRequest.timeseries (field 1) and each
    series' samples (field 2), stopping as soon as a limit is passed, so its cost is bounded by the limits;
    bytes that are not protobuf are left to the parser to describe.
    """
    # Every Sample starts with the byte 0x12 (field 2, length-delimited), so fewer 0x12 bytes than the limit
    # (one C-level count; label values start with it too) means the samples need no walk.
    walk_samples = raw.count(b"\x12") > limits.max_points_per_request
    series = points = 0
    for number, start, end in _fields(raw, 0, len(raw)):
        if number != 1:
            continue
        series += 1
        if series > limits.max_series_per_request:
            check_request_size(series, 0, limits)
        if walk_samples:
            points += sum(1 for inner, _, _ in _fields(raw, start, end) if inner == 2)
            if points > limits.max_points_per_request:
                check_request_size(0, points, limits)


def _fields(raw: bytes, pos: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(field number, payload start, payload end) of the length-delimited fields in raw[pos:end]; other wire
    types are skipped; stops quietly at anything malformed."""
    while pos < end:
        tag, pos = _uvarint(raw, pos, end)
        if tag < 0:
            return
        wire = tag & 7
        if wire == 2:
            length, pos = _uvarint(raw, pos, end)
            if length < 0 or pos + length > end:
                return
            yield tag >> 3, pos, pos + length
            pos += length
        elif wire == 0:
            _, pos = _uvarint(raw, pos, end)
            if pos < 0:
                return
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            return


def _uvarint(raw: bytes, pos: int, end: int) -> tuple[int, int]:
    """The varint at `pos` and the position after it; (-1, -1) when there is none."""
    value = shift = 0
    while pos < end and shift < 64:
        byte = raw[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    return -1, -1


def _snappy_declared_length(body: bytes) -> int | None:
    """The uvarint (at most 32 bits, so 5 bytes) that opens a snappy block, or None if there is none."""
    length = 0
    for shift, byte in zip(range(0, 35, 7), body, strict=False):
        length |= (byte & 0x7F) << shift
        if byte < 0x80:
            return length if length < 1 << 32 else None
    return None


def _parse(raw: bytes) -> Any:
    request = WriteRequest()
    try:
        request.ParseFromString(raw)
    except DecodeError as exc:
        raise RemoteWriteError(
            f"body decompressed but is not a protobuf prometheus.WriteRequest ({exc}); "
            "remote_write 2.0 (io.prometheus.write.v2.Request) is not supported"
        ) from None
    return request


def _name_and_labels(index: int, raw_labels: Any, names_ok: set[str]) -> tuple[str, dict[str, str]]:
    """`__name__` and the other labels; other `__` labels are Prometheus-internal and empty values mean absent."""
    labels: dict[str, str] = dict(map(_NAME_VALUE, raw_labels))
    if len(labels) != len(raw_labels):
        raise RemoteWriteError(f"series {index} {_describe(raw_labels)}: a label name appears twice")
    name = labels.pop("__name__", None)
    if name is None:
        raise RemoteWriteError(
            f"series {index} {_describe(raw_labels)} has no __name__ label; every series needs a metric name"
        )
    drop = [key for key in labels if key not in names_ok and _drop_or_check(index, raw_labels, key, names_ok)]
    if "" in labels.values():
        drop += [key for key, value in labels.items() if not value]
    for key in drop:
        labels.pop(key, None)
    return name, labels


def _drop_or_check(index: int, raw_labels: Any, key: str, names_ok: set[str]) -> bool:
    """True for a label to drop; raises on an invalid name; remembers a valid one so it is checked once."""
    if key.startswith("__"):
        return True
    if not is_label_name(key):
        raise RemoteWriteError(
            f"series {index} {_describe(raw_labels)}: {key!r} is not a valid label name "
            "(expected [a-zA-Z_][a-zA-Z0-9_]*)"
        )
    names_ok.add(key)
    return False


def _kind(name: str, family_types: Mapping[str, int]) -> SampleKind:
    """Counter or gauge: the request's metadata when it covers the series, else Prometheus' naming suffixes.

    Prometheus sends metadata in requests of its own, so the suffixes decide for most series.
    """
    exact = family_types.get(name)
    if exact == _COUNTER:
        return "counter"
    if exact in (_GAUGE, _SUMMARY):  # a summary's own series are its quantiles, which go down as well as up
        return "gauge"
    for suffix in _COUNTER_SUFFIXES:
        if name.endswith(suffix):
            return "gauge" if family_types.get(name[: -len(suffix)]) == _GAUGEHISTOGRAM else "counter"
    return "gauge"


def _describe(raw_labels: Any) -> str:
    text = "{" + ", ".join(f'{label.name}="{label.value}"' for label in raw_labels) + "}"
    return text if len(text) <= 200 else text[:197] + "...}"
