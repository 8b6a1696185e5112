"""Given remote_write 1.0 bodies as Prometheus sends them, expect these series blocks and these skipped counts."""

from __future__ import annotations

import math
import struct

import cramjam
import pytest

from watchkeeper.producers.remote_write import (
    DecodedWrite,
    RemoteWriteError,
    decode_write_request,
    encode_write_request,
)
from watchkeeper.schemas import SampleBatch, decode_sample_message, encode
from watchkeeper.schemas.limits import IngestLimits, LimitError
from watchkeeper.schemas.samples import SeriesBlock

T0 = 1_700_000_000_000  # ms, as on the wire
NOW = T0 / 1000 + 3600.0  # the receiving process's clock, an hour after T0


DEFAULT_LIMITS = IngestLimits()


def decode(body: bytes, limits: IngestLimits = DEFAULT_LIMITS) -> DecodedWrite:
    return decode_write_request(body, limits, NOW)


def pair(body: bytes) -> tuple[list[SeriesBlock], int]:
    """Blocks and skipped native histograms, for requests where nothing else is left out."""
    got = decode(body)
    assert (got.stale, got.refused) == (0, {}), got
    return got.blocks, got.skipped
STALE_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]


# Protobuf wire format, by hand, so field numbers are checked against prompb and not against our own encoder.
def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _label(name: str, value: str) -> bytes:
    return _len_field(1, name.encode()) + _len_field(2, value.encode())


def _sample(value: float, ts_ms: int) -> bytes:
    return _varint(1 << 3 | 1) + struct.pack("<d", value) + _varint(2 << 3 | 0) + _varint(ts_ms)


def _block(name: str, labels: dict[str, str], kind: str, ts: list[float], values: list[float]) -> SeriesBlock:
    """A block as pydantic validates it, to compare with the unvalidated ones the decoder builds."""
    return SeriesBlock.model_validate({"name": name, "labels": labels, "kind": kind, "ts": ts, "values": values})


def test_round_trip_gives_validated_blocks_in_seconds() -> None:
    body = encode_write_request([
        ({"__name__": "http_requests_total", "job": "api", "code": "200"}, [(T0, 1.0), (T0 + 15_123, 4.0)]),
        ({"__name__": "node_load1", "instance": "host-a:9100"}, [(T0, 0.25)]),
    ])
    blocks, skipped = pair(body)
    assert skipped == 0
    assert blocks == [
        _block("http_requests_total", {"code": "200", "job": "api"}, "counter",
               [1_700_000_000.0, 1_700_000_015.123], [1.0, 4.0]),
        _block("node_load1", {"instance": "host-a:9100"}, "gauge", [1_700_000_000.0], [0.25]),
    ]
    batch = SampleBatch.model_construct(v=1, source="remote_write", labels={}, series=blocks)
    assert decode_sample_message(encode(batch)) == SampleBatch(source="remote_write", series=blocks)


def test_hand_assembled_write_request_matches_prompb_field_numbers() -> None:
    # WriteRequest.timeseries=1 > TimeSeries.labels=1 {name=1, value=2}, TimeSeries.samples=2 {value=1 double,
    # timestamp=2 int64}; one literal series first, then one with an exemplar (TimeSeries field 3), and
    # WriteRequest.metadata=3 {type=1, metric_family_name=2, help=4, unit=5}.
    literal_series = (
        b"\x0a\x1d"  # timeseries, 29 bytes
        b"\x0a\x0e" b"\x0a\x08__name__" b"\x12\x02up"  # label __name__="up"
        b"\x12\x0b" b"\x09" + struct.pack("<d", 1.0) + b"\x10\x00"  # sample 1.0 at ts 0 (written, though default)
    )
    with_exemplar = (
        _len_field(1, _label("__name__", "jobs_done"))
        + _len_field(1, _label("queue", "mail"))
        + _len_field(2, _sample(7.5, T0))
        + _len_field(3, _len_field(1, _label("trace_id", "abc")) + b"\x11" + struct.pack("<d", 7.5) + b"\x18\x01")
    )
    metadata = b"\x08\x01" + _len_field(2, b"jobs_done") + _len_field(4, b"Jobs done.") + _len_field(5, b"")
    body = bytes(cramjam.snappy.compress_raw(literal_series + _len_field(1, with_exemplar) + _len_field(3, metadata)))

    blocks, skipped = pair(body)

    assert skipped == 0
    assert blocks == [
        _block("up", {}, "gauge", [0.0], [1.0]),
        _block("jobs_done", {"queue": "mail"}, "counter", [T0 / 1000], [7.5]),  # counter by metadata alone
    ]


def test_staleness_markers_are_dropped_and_other_non_finite_values_refused_and_counted() -> None:
    assert math.isnan(STALE_NAN)
    body = encode_write_request([
        ({"__name__": "up", "job": "a"}, [(T0, 1.0), (T0 + 15_000, STALE_NAN), (T0 + 30_000, 1.0)]),
        ({"__name__": "up", "job": "gone"}, [(T0, STALE_NAN)]),
        ({"__name__": "temp", "job": "a"}, [(T0, math.inf), (T0 + 1, -math.inf), (T0 + 2, math.nan), (T0 + 3, 2.0)]),
    ])
    got = decode(body)
    blocks = got.blocks
    assert (got.stale, got.refused) == (2, {"bad_value": 3}) and got.skipped == 0
    assert got.first_refusal == ('series 2 {__name__="temp", job="a"}: '
                                 "value=inf is not a finite number within ±1e+300")
    assert blocks == [
        _block("up", {"job": "a"}, "gauge", [T0 / 1000, (T0 + 30_000) / 1000], [1.0, 1.0]),
        _block("temp", {"job": "a"}, "gauge", [(T0 + 3) / 1000], [2.0]),
    ]


def test_native_histogram_only_series_are_counted_as_skipped() -> None:
    histogram = _len_field(4, b"\x08\x05" + b"\x19" + struct.pack("<d", 3.0))  # count_int=5, sum=3.0
    series = _len_field(1, _label("__name__", "rpc_seconds")) + histogram + histogram
    body = bytes(cramjam.snappy.compress_raw(_len_field(1, series)))
    assert pair(body) == ([], 2)


@pytest.mark.parametrize(
    ("name", "metadata", "kind"),
    [
        ("http_requests_total", {}, "counter"),
        ("rpc_seconds_count", {}, "counter"),
        ("rpc_seconds_sum", {}, "counter"),
        ("rpc_seconds_bucket", {}, "counter"),
        ("node_load1", {}, "gauge"),
        ("jobs_done", {"jobs_done": "counter"}, "counter"),
        ("queue_count", {"queue_count": "gauge"}, "gauge"),
        ("rpc_seconds", {"rpc_seconds": "summary"}, "gauge"),  # a summary's quantiles
        ("rpc_seconds_count", {"rpc_seconds": "summary"}, "counter"),
        ("jobs_bucket", {"jobs": "gaugehistogram"}, "gauge"),
    ],
)
def test_kind_from_suffix_or_metadata(name: str, metadata: dict[str, str], kind: str) -> None:
    blocks, _ = pair(encode_write_request([({"__name__": name}, [(T0, 1.0)])], metadata))
    assert [block.kind for block in blocks] == [kind]


def test_internal_labels_and_empty_values_are_dropped() -> None:
    body = encode_write_request(
        [({"__name__": "up", "__meta_x": "1", "job": "a", "zone": "", "_private": "p"}, [(T0, 1.0)])]
    )
    blocks, _ = pair(body)
    assert blocks[0].labels == {"_private": "p", "job": "a"}


@pytest.mark.parametrize(
    "body",
    [b"", b"not snappy at all", bytes(cramjam.snappy.compress(b"\x0a\x00")), b"\xff\xff\xff\xff\x0f\x00"],
    ids=["empty", "text", "framed-snappy", "lying-length-header"],
)
def test_bad_snappy(body: bytes) -> None:
    with pytest.raises(RemoteWriteError, match=r"not snappy-compressed \(block format\)"):
        decode(body)


@pytest.mark.parametrize(
    "raw",
    [b"\x0a\xff\x01", b"\x0a\x04\x0a\x02\x0a\xff", _len_field(1, _len_field(1, _len_field(1, b"\xff\xfe")))],
    ids=["truncated", "truncated-label", "label-not-utf8"],
)
def test_bad_protobuf(raw: bytes) -> None:
    with pytest.raises(RemoteWriteError, match=r"not a protobuf prometheus\.WriteRequest"):
        decode(bytes(cramjam.snappy.compress_raw(raw)))


def test_empty_request_is_no_series() -> None:
    assert pair(bytes(cramjam.snappy.compress_raw(b""))) == ([], 0)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"job": "a", "instance": "h:1"}, r'series 1 \{instance="h:1", job="a"\} has no __name__ label'),
        ({"__name__": "up-time"}, r"series 1 .*'up-time' is not a valid metric name"),
        ({"__name__": "up\n"}, r"is not a valid metric name"),
        ({"__name__": "up", "bad-label": "x"}, r"'bad-label' is not a valid label name"),
    ],
)
def test_invalid_series_fail_the_request_naming_the_series(labels: dict[str, str], message: str) -> None:
    body = encode_write_request([({"__name__": "ok"}, [(T0, 1.0)]), (labels, [(T0, 1.0)])])
    with pytest.raises(RemoteWriteError, match=message):
        decode(body)


def test_duplicate_label_and_negative_timestamp_are_errors() -> None:
    series = _len_field(1, _label("__name__", "up")) + _len_field(1, _label("job", "a")) * 2
    with pytest.raises(RemoteWriteError, match="label name appears twice"):
        decode(bytes(cramjam.snappy.compress_raw(_len_field(1, series))))
    with pytest.raises(RemoteWriteError, match="before 1970"):
        decode(encode_write_request([({"__name__": "up"}, [(-1000, 1.0)])]))


def test_many_series_decode_completely() -> None:
    series = [
        ({"__name__": "http_requests_total", "instance": f"h{i % 50}", "path": f"/p{i}"},
         [(T0 + 15_000 * k, float(i + k)) for k in range(1 + i % 3)])
        for i in range(5_000)
    ]
    blocks, skipped = pair(encode_write_request(series))
    assert skipped == 0 and len(blocks) == 5_000
    assert sum(len(block.ts) for block in blocks) == sum(len(samples) for _, samples in series)
    assert blocks[4_999] == _block(
        "http_requests_total", {"instance": "h49", "path": "/p4999"}, "counter",
        [T0 / 1000, (T0 + 15_000) / 1000], [4_999.0, 5_000.0],
    )


# Limits (schemas.limits): per-sample and per-series refusals keep the rest; request-wide ones refuse it all.

def test_future_and_out_of_range_timestamps_are_refused_and_the_rest_kept() -> None:
    max_future_ms = int((NOW + 600) * 1000)
    body = encode_write_request([
        ({"__name__": "up", "job": "a"}, [(T0, 1.0), (max_future_ms, 2.0), (max_future_ms + 1000, 3.0)]),
        ({"__name__": "up", "job": "b"}, [(2**63 - 1, 1.0)]),  # the largest int64 timestamp the issue sent
        ({"__name__": "up", "job": "c"}, [(int(NOW * 1000) + 365 * 86_400_000, 1.0)]),  # a year ahead
    ])
    got = decode(body)
    assert got.blocks == [_block("up", {"job": "a"}, "gauge", [T0 / 1000, max_future_ms / 1000], [1.0, 2.0])]
    assert got.refused == {"future": 2, "bad_timestamp": 1}
    assert got.first_refusal.startswith('series 0 {__name__="up", job="a"}: ts=') and "windows.max_future=600" \
        in got.first_refusal


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        ({"__name__": "up", **{f"l{i}": "v" for i in range(30)}}, "too_many_labels"),
        ({"__name__": "up", "big": "x" * 2049}, "label_value_too_long"),
        ({"__name__": "up", "big": "é" * 1025}, "label_value_too_long"),  # 2,050 bytes of UTF-8
        ({"__name__": "u" * 2049}, "label_value_too_long"),
        ({"__name__": "up", "n" * 1025: "v"}, "label_name_too_long"),
    ],
)
def test_series_over_a_label_limit_are_refused_and_the_rest_kept(labels: dict[str, str], reason: str) -> None:
    body = encode_write_request([({"__name__": "ok"}, [(T0, 1.0)]), (labels, [(T0, 1.0), (T0 + 1, 2.0)])])
    got = decode(body)
    assert [b.name for b in got.blocks] == ["ok"] and got.refused == {reason: 2}
    assert got.first_refusal.startswith("series 1 ")


def test_limits_at_their_bound_are_accepted() -> None:
    labels = {"__name__": "u" * 2048, "v": "é" * 1024, **{f"l{i}": "v" for i in range(28)}}  # 30 names
    got = decode(encode_write_request([(labels, [(int((NOW + 600) * 1000), 1.0)])]))
    assert got.refused == {} and len(got.blocks) == 1


def test_non_ascii_label_names_are_not_prometheus_label_names() -> None:
    with pytest.raises(RemoteWriteError, match="not a valid label name"):
        decode(encode_write_request([({"__name__": "up", "é": "1"}, [(T0, 1.0)])]))


def test_too_many_series_or_points_refuse_the_whole_request() -> None:
    small = IngestLimits(max_series_per_request=3, max_points_per_request=5)
    with pytest.raises(LimitError, match="4 series in one request, more than max_series_per_request=3") as info:
        decode(encode_write_request([({"__name__": f"m{i}"}, [(T0, 1.0)]) for i in range(4)]), small)
    assert info.value.reason == "too_many_series"
    with pytest.raises(LimitError, match="6 points in one request") as info:
        decode(encode_write_request([({"__name__": "m"}, [(T0 + k, 1.0) for k in range(6)])]), small)
    assert info.value.reason == "too_many_points"


def test_snappy_bomb_is_refused_from_its_length_header_before_decompressing() -> None:
    bomb = bytes(cramjam.snappy.compress_raw(b"\0" * (40 * 2**20)))  # 40 MiB of zeros in ~1.9 MB
    assert len(bomb) < 2 * 2**20
    with pytest.raises(LimitError, match=r"decompresses to 41943040 bytes, more than max_decompressed_bytes=33554432"):
        decode(bomb)
    one_mib = IngestLimits(max_decompressed_bytes=2**20)
    with pytest.raises(LimitError) as info:
        decode(bytes(cramjam.snappy.compress_raw(b"\0" * (2**20 + 1))), one_mib)
    assert info.value.reason == "decompressed_too_large"


def test_series_and_samples_are_counted_from_the_wire_before_protobuf_parses_them() -> None:
    """32 MiB of empty series (2 bytes each) parsed into 16 M messages took ~800 MiB and 3 s; counted first,
    the request is refused after 10,001 of them. The junk after them proves the parser never ran."""
    raw = b"\x0a\x00" * 10_001 + b"\x0a\xff\xff"
    with pytest.raises(LimitError, match="10001 series") as info:
        decode(bytes(cramjam.snappy.compress_raw(raw)))
    assert info.value.reason == "too_many_series"
    one_series_many_samples = _len_field(1, _len_field(2, b"") * 101) + b"\xff"
    with pytest.raises(LimitError, match="101 points") as info:
        decode(bytes(cramjam.snappy.compress_raw(one_series_many_samples)), IngestLimits(max_points_per_request=100))
    assert info.value.reason == "too_many_points"


def test_each_sending_host_is_its_own_source() -> None:
    """remote_write carries many hosts in one request: each gets its own batch, keyed (and watermarked in the
    worker) by its instance label, else its host label; series with neither share `remote_write`."""
    from watchkeeper.producers.push_api import remote_write_batches

    def block(**labels: str) -> SeriesBlock:
        return SeriesBlock(name="up", labels=labels, ts=[1.0], values=[1.0])

    blocks = [block(instance="a:9100"), block(host="b"), block(instance="a:9100", job="x"), block(job="y"),
              block(instance="z" * 300)]
    got = {b.source: [s.labels for s in b.series] for b in remote_write_batches(blocks, max_source_length=256)}
    assert got == {"a:9100": [{"instance": "a:9100"}, {"instance": "a:9100", "job": "x"}], "b": [{"host": "b"}],
                   "remote_write": [{"job": "y"}, {"instance": "z" * 300}]}
