"""Generated hostile inputs for every ingestion path: mutations of valid requests plus plain junk.

One seeded `random.Random` drives everything, so a run is reproduced from its seed and an input's index. Each
generator mixes valid requests (so the accepting paths are exercised too), requests at and just past each
limit, and mutations (bit flips, truncation, splices, type swaps) that reach the parsers' error paths.
"""

from __future__ import annotations

import base64
import random
import struct
from collections.abc import Callable
from typing import Any

import cramjam
import orjson

from watchkeeper.producers.remote_write import encode_write_request

NOW = 1_800_000_000.0  # the receiving clock of every fuzz run
STALE_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
_NAMES = ["up", "http_requests_total", "a:b", "_x", "9bad", "bad name", "", "é", "m" * 2049, "x\n", "__name__"]
_LABELS = ["job", "instance", "le", "_a", "__x", "a-b", "é‹img…>", "ǅ", "0b", "", "n" * 1025, "quantile"]
_STRINGS = ["", "v", "x" * 2049, "é" * 1025, "\x00", "\ud800", "\n\"\\", "€" * 700, "a" * 70_000]
_TS = [NOW, NOW - 3600, NOW + 599, NOW + 601, NOW + 365 * 86400, 0, -1, 1e300, 9.3e9, 2**63, -0.0, 1.5]
_VALUES: list[Any] = [0, 1, -1, 1.5, 1e308, -1e308, 2**64, 2**63 - 1, 5e-324, True, None, "1", [], {}]


def _pick(rng: random.Random, items: list[Any]) -> Any:
    return items[rng.randrange(len(items))]


def _junk(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 2 else 5)
    if kind == 0:
        return _pick(rng, _VALUES)
    if kind == 1:
        return _pick(rng, _STRINGS)
    if kind == 2:
        return rng.uniform(-1e12, 1e12)
    if kind == 3:
        return rng.randint(-(2**70), 2**70)
    if kind == 4:
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(8)))
    if kind == 5:
        return [_junk(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 6:
        return {str(_junk(rng, 3)): _junk(rng, depth + 1) for _ in range(rng.randrange(4))}
    return None


def _labels(rng: random.Random) -> dict[str, str]:
    r = rng.random()
    if r < 0.6:
        return {f"l{i}": f"v{rng.randrange(100)}" for i in range(rng.randrange(4))}
    if r < 0.7:
        return {f"l{i}": "v" for i in range(rng.choice([28, 29, 30, 2000]))}
    return {_pick(rng, _LABELS): _pick(rng, _STRINGS) for _ in range(rng.randrange(1, 4))}


def _sample(rng: random.Random) -> dict[str, Any]:
    return {"name": _pick(rng, _NAMES[:4]) if rng.random() < 0.8 else _pick(rng, _NAMES),
            "labels": _labels(rng), "ts": NOW - rng.randrange(1000) if rng.random() < 0.7 else _pick(rng, _TS),
            "value": rng.uniform(-1e6, 1e6) if rng.random() < 0.8 else _pick(rng, _VALUES),
            "kind": rng.choice(["gauge", "counter"])}


def _batch(rng: random.Random) -> dict[str, Any]:
    series = []
    for _ in range(rng.choice([0, 1, 2, 5, 20])):
        n = rng.choice([0, 1, 3, 10])
        ts = [NOW - rng.randrange(1000) for _ in range(n)]
        if n and rng.random() < 0.2:
            ts[rng.randrange(n)] = _pick(rng, _TS)
        series.append({"name": _pick(rng, _NAMES[:4]) if rng.random() < 0.9 else _pick(rng, _NAMES),
                       "labels": _labels(rng), "kind": rng.choice(["gauge", "counter"]), "ts": ts,
                       "values": [rng.uniform(-1e3, 1e3) for _ in range(n)]})
    source = "app" if rng.random() < 0.9 else _pick(rng, _STRINGS)
    return {"source": source, "labels": _labels(rng) if rng.random() < 0.3 else {}, "series": series}


def _mutate_obj(rng: random.Random, obj: Any) -> Any:
    """Replace, delete or add one field somewhere in a JSON value."""
    if isinstance(obj, dict) and obj:
        key = _pick(rng, list(obj))
        op = rng.randrange(4)
        if op == 0:
            obj[key] = _junk(rng)
        elif op == 1:
            del obj[key]
        elif op == 2:
            obj[str(_junk(rng, 3))] = _junk(rng)
        else:
            obj[key] = _mutate_obj(rng, obj[key])
    elif isinstance(obj, list) and obj:
        i = rng.randrange(len(obj))
        obj[i] = _mutate_obj(rng, obj[i]) if rng.random() < 0.7 else _junk(rng)
    else:
        return _junk(rng)
    return obj


def _mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        op = rng.randrange(4)
        if op == 0 and b:
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            del b[rng.randrange(len(b)):]
        elif op == 2:
            i = rng.randrange(len(b) + 1)
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
        elif b:
            i, j = sorted(rng.randrange(len(b)) for _ in range(2))
            b[i:i] = b[i:j]
    return bytes(b)


def json_body(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.05:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
    doc: Any = _sample(rng) if r < 0.35 else _batch(rng) if r < 0.7 else [
        _sample(rng) if rng.random() < 0.5 else _batch(rng) for _ in range(rng.randrange(1, 4))]
    if rng.random() < 0.4:
        doc = _mutate_obj(rng, doc)
    try:
        raw = orjson.dumps(doc)
    except (TypeError, orjson.JSONEncodeError):  # a lone surrogate, an int past 64 bits: junk bytes then
        raw = repr(doc).encode("utf-8", "replace")
    return _mutate_bytes(rng, raw) if rng.random() < 0.1 else raw


def _text_value(rng: random.Random) -> str:
    if rng.random() < 0.8:
        return str(rng.uniform(-1e6, 1e6))
    return str(rng.choice([rng.uniform(-1e6, 1e6), "NaN", "+Inf", "-Inf", "1e309", "0x1", "1_0", "", "-0"]))


_TEXT_LABEL_VALUES = ["a", "b", "x" * 2049, "é", "\\\\", "\\n", "\\q", '\\"']


def text_body(rng: random.Random) -> bytes:
    lines = []
    for _ in range(rng.randrange(1, 8)):
        name = _pick(rng, _NAMES[:4]) if rng.random() < 0.97 else _pick(rng, _NAMES)
        if rng.random() < 0.3:
            lines.append(f"# TYPE {name} {rng.choice(['counter', 'gauge', 'histogram', 'summary', 'untyped', 'x'])}")
        labels = ",".join(f'{_pick(rng, _LABELS[:4]) if rng.random() < 0.95 else _pick(rng, _LABELS)}='
                          f'"{_pick(rng, _TEXT_LABEL_VALUES) if rng.random() < 0.2 else "v"}"'
                          for _ in range(rng.randrange(3)))
        ts = "" if rng.random() < 0.8 else " " + str(rng.choice(
            [int(NOW * 1000), int((NOW + 3600) * 1000), 2**63, -5, "1e3", "x"]))
        lines.append(f"{name}{{{labels}}} {_text_value(rng)}{ts}" if labels or rng.random() < 0.5
                     else f"{name} {_text_value(rng)}{ts}")
    raw = ("\n".join(lines) + ("\n" if rng.random() < 0.9 else "")).encode("utf-8", "surrogatepass")
    return _mutate_bytes(rng, raw) if rng.random() < 0.1 else raw


def _b64(rng: random.Random, text: str) -> str:
    good = base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode()
    return rng.choice([good, good.rstrip("="), good + "=", good[:-1] or "a", "!!", "_-8", "a", ""])


def push_path(rng: random.Random) -> str:
    job = rng.choice(["nightly", "j", "", "a/b", "%2F", "é", "j" * 300, "x%00"]) if rng.random() < 0.3 else "j"
    path = f"/metrics/job@base64/{_b64(rng, job)}" if rng.random() < 0.3 else f"/metrics/job/{job}"
    for _ in range(rng.randrange(3)):
        name = _pick(rng, _LABELS[:2]) if rng.random() < 0.8 else _pick(rng, _LABELS)
        value = _pick(rng, ["db-1", "", "é", "v" * 3000, "%ff", "a b"])
        path += f"/{name}@base64/{_b64(rng, value)}" if rng.random() < 0.4 else f"/{name}/{value}"
    if rng.random() < 0.1:
        path += "/odd"
    return path


_BOMB = bytes(cramjam.snappy.compress_raw(b"\0" * (33 * 2**20)))  # built once: 33 MiB of zeros in ~1.6 MB


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def remote_write_body(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.03:
        return _BOMB
    if r < 0.08:  # a length header claiming more than there is
        return _varint(rng.choice([2**31, 33 * 2**20, 2**32 - 1, 10**6])) + bytes(rng.randrange(256) for _ in range(20))
    if r < 0.15:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
    if r < 0.25:  # protobuf-ish: random bytes, snappy-compressed so they reach the protobuf parser
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        return bytes(cramjam.snappy.compress_raw(raw))
    series = []
    for _ in range(rng.choice([0, 1, 3, 20])):
        labels = {"__name__": _pick(rng, _NAMES[:4]) if rng.random() < 0.9 else _pick(rng, _NAMES)}
        labels.update(_labels(rng) if rng.random() < 0.3 else {"job": "j", "instance": f"h{rng.randrange(5)}"})
        samples = []
        for _ in range(rng.choice([0, 1, 1, 2, 5])):
            ts = rng.choice([int(NOW * 1000) - rng.randrange(10**6), int((NOW + 601) * 1000), 2**63 - 1, 0,
                             -1, int((NOW + 365 * 86400) * 1000)]) if rng.random() < 0.3 else int(NOW * 1000)
            value = rng.choice([STALE_NAN, float("nan"), float("inf"), 1e308]) if rng.random() < 0.2 \
                else rng.uniform(-1e6, 1e6)
            samples.append((ts, value))
        series.append((labels, samples))
    try:
        body = encode_write_request(series, {"up": "gauge"} if rng.random() < 0.2 else None)
    except (ValueError, UnicodeEncodeError):  # protobuf refuses lone surrogates in strings
        body = bytes(cramjam.snappy.compress_raw(b"\x0a\x00"))
    if rng.random() < 0.2:  # mutate the protobuf inside, or the snappy around it
        if rng.random() < 0.5:
            body = bytes(cramjam.snappy.compress_raw(_mutate_bytes(rng, bytes(cramjam.snappy.decompress_raw(body)))))
        else:
            body = _mutate_bytes(rng, body)
    return body


def sample_message(rng: random.Random) -> bytes:
    """A `wk.samples` value as the worker reads it (with "v": 1 most of the time)."""
    raw = json_body(rng)
    if rng.random() < 0.8:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw
        if isinstance(doc, dict):
            doc.setdefault("v", 1)
            return orjson.dumps(doc)
    return raw


GENERATORS: dict[str, Callable[[random.Random], bytes]] = {
    "json": json_body, "text": text_body, "remote_write": remote_write_body, "sample_message": sample_message,
}
