"""One framing for every checkpoint Watchkeeper writes (window engines, window partitions, anomaly
series): a versioned header, then the owner's orjson head, then its raw body.

    b"WK" | version (1 byte) | head length (4 bytes, big-endian) | head (orjson) | body

A large checkpoint may be stored compressed: ``b"WZ"`` then the zlib-compressed framing (`deflate`,
`inflate`); a window partition of 25,000 series is 5 MB raw, past a producer's 4 MiB request limit, and
~0.25 MB compressed.

Checkpoints written before this framing existed are a bare 4-byte length, head and body. Their first
byte is always 0 (a head of 16 MiB or more was never written), and this framing's is ``W``, so both are
read: a worker upgraded in place resumes from what its predecessor checkpointed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import orjson

from watchkeeper.core.errors import CoreError

MAGIC = b"WK"
COMPRESSED = b"WZ"
VERSION = 1
_PREFIX = len(MAGIC) + 1


class CheckpointFrameError(CoreError):
    """Bytes that are not a checkpoint (neither this framing nor the unversioned one before it)."""


@dataclass(frozen=True)
class Framed:
    """A checkpoint read back: its head and where its body starts in the bytes (no copy of the body)."""

    head: Any
    body_at: int
    version: int  # 0: the unversioned framing written before this one


def frame(head: Any, *body: bytes) -> bytes:
    """`head` (anything orjson encodes) and the body's parts as one checkpoint."""
    encoded = orjson.dumps(head)
    return b"".join([MAGIC, VERSION.to_bytes(1, "big"), len(encoded).to_bytes(4, "big"), encoded, *body])


def deflate(framed: bytes, level: int = 1) -> bytes:
    """A `frame()`'s bytes compressed (level 1: ~70 ms for 5 MB of window state, ~20x smaller)."""
    return COMPRESSED + zlib.compress(framed, level)


def inflate(data: bytes) -> bytes:
    """The framing of a checkpoint, whether `deflate()` compressed it or not."""
    if data[:2] != COMPRESSED:
        return data
    try:
        return zlib.decompress(data[2:])
    except zlib.error as exc:
        raise CheckpointFrameError(f"compressed checkpoint does not decompress: {exc}") from None


def unframe(data: bytes | memoryview) -> Framed:
    """The head of a checkpoint `frame()` (or the unversioned framing before it) wrote."""
    raw = bytes(data[:_PREFIX])
    if raw[:2] == MAGIC:
        version, at = raw[2], _PREFIX
        if version != VERSION:
            raise CheckpointFrameError(f"checkpoint framing version {version} is newer than this worker's "
                                       f"({VERSION}): upgrade the worker before it resumes this state")
    elif raw[:1] == b"\x00":
        version, at = 0, 0
    else:
        raise CheckpointFrameError(f"not a checkpoint: starts with {raw!r}")
    if len(data) < at + 4:
        raise CheckpointFrameError(f"truncated checkpoint: {len(data)} bytes")
    size = int.from_bytes(data[at:at + 4], "big")
    if len(data) < at + 4 + size:
        raise CheckpointFrameError(f"truncated checkpoint: a head of {size} bytes in {len(data)} bytes")
    try:
        head = orjson.loads(data[at + 4:at + 4 + size])
    except orjson.JSONDecodeError as exc:
        raise CheckpointFrameError(f"checkpoint head is not JSON: {exc}") from None
    return Framed(head, at + 4 + size, version)
