"""Prometheus remote_write 1.0: a snappy block-compressed protobuf `prometheus.WriteRequest`, as `SeriesBlock`s.

The message classes are built at import time from a descriptor written here in Python, so neither protoc nor
generated code is needed. Only what we read is declared (field numbers as in Prometheus' `prompb/types.proto`
and `prompb/remote.proto`); exemplars (TimeSeries field 3) stay unknown fields, and native histograms
(field 4) are declared as an empty message only so that they can be counted as skipped.

Decoding is the push API's hot path, so blocks are built with `SeriesBlock.model_construct`: metric and label
names are checked here once per distinct name with compiled regexes, and values are checked for finiteness
per series in one `sum`, instead of pydantic validating every block and every point again.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from operator import attrgetter
from typing import Any

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from schemas.samples import METRIC_NAME_PATTERN, SampleKind, SeriesBlock

# fullmatch, not match: with `re`, `$` also matches before a trailing newline, which pydantic's pattern does not.
_NAME_OK = re.compile(METRIC_NAME_PATTERN).fullmatch
# Prometheus' label name rule, as producers/exposition.py applies it, so both ingestion paths agree.
_LABEL_OK = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*").fullmatch
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


def decode_write_request(body: bytes) -> tuple[list[SeriesBlock], int]:
    """The series of one request, and how many samples were skipped because our JSON wire cannot carry them.

    Skipped: staleness markers and any other NaN or infinite value (orjson would write them as `null`), and
    the native histograms of series without float samples (Prometheus sends them in series of their own).
    A series left with no points yields no block. Timestamps are epoch
    milliseconds on the wire and float seconds in the blocks. Anything else wrong fails the whole request.
    """
    request = _parse(_decompress(body))
    family_types: dict[str, int] = {meta.metric_family_name: meta.type for meta in request.metadata}
    kinds: dict[str, SampleKind] = {}  # also the set of metric names already checked
    label_names_ok: set[str] = set()
    blocks: list[SeriesBlock] = []
    skipped = 0
    isfinite = math.isfinite
    for index, series in enumerate(request.timeseries):
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
            skipped += len(series.histograms)
            continue
        # One sum instead of a test per point: NaN or ±inf anywhere makes it non-finite.
        if not isfinite(sum(values)):
            keep = [i for i, value in enumerate(values) if isfinite(value)]
            skipped += len(values) - len(keep)
            if not keep:
                continue
            values = [values[i] for i in keep]
            stamps = [stamps[i] for i in keep]
        if min(stamps) < 0:
            raise RemoteWriteError(
                f"series {index} {_describe(series.labels)}: timestamp {min(stamps)} ms is before 1970; "
                "remote_write timestamps are epoch milliseconds"
            )
        blocks.append(SeriesBlock.model_construct(
            _BLOCK_FIELDS, name=name, labels=labels, kind=kind, ts=[stamp / 1000 for stamp in stamps], values=values
        ))
    return blocks, skipped


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


def _decompress(body: bytes) -> bytes:
    # The block format starts with the decoded length; refuse impossible ones before the decoder allocates
    # them (it aborts the process, not raises, when a lying header asks for more memory than there is).
    declared = _snappy_declared_length(body)
    if declared is None or declared > _MAX_SNAPPY_RATIO * len(body):
        raise RemoteWriteError(_NOT_SNAPPY + "(no valid length header)")
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        raise RemoteWriteError(_NOT_SNAPPY + f"({exc})") from None


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
    if not _LABEL_OK(key):
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
