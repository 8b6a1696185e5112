"""Detector state as bytes, for a Faust table: a JSON header (scalars, array layout) then raw array bytes.

Why not pickle: the bytes cross process versions and must not execute code when loaded. Why not orjson
lists: a seasonal profile is hundreds of floats per series and the table is written on every batch.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import orjson

from watchkeeper.core.errors import CoreError

_MAGIC = b"WKD1"


class StateDecodeError(CoreError):
    """The bytes are not a detector state written by this codec (corrupt table entry, other version)."""


def pack_state(meta: dict[str, Any], fields: dict[str, Any]) -> bytes:
    """Pack ``meta`` (JSON-able) and ``fields`` (name -> numpy array or JSON-able scalar) into bytes."""
    scalars: dict[str, Any] = {}
    nonfinite: dict[str, str] = {}  # JSON has no NaN/Inf (orjson writes null): kept by name, as text
    layout: list[list[Any]] = []
    blobs: list[bytes] = []
    for name, value in fields.items():
        if isinstance(value, np.ndarray):
            layout.append([name, value.dtype.str, list(value.shape)])
            blobs.append(value.tobytes())  # C order whatever the array's layout
        else:
            value = value.item() if isinstance(value, np.generic) else value
            if isinstance(value, float) and not math.isfinite(value):
                nonfinite[name] = repr(value)
            else:
                scalars[name] = value
    header = orjson.dumps({"meta": meta, "scalars": scalars, "nonfinite": nonfinite, "arrays": layout})
    return _MAGIC + struct.pack("<I", len(header)) + header + b"".join(blobs)


def unpack_state(raw: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """Inverse of `pack_state`: returns ``(meta, fields)``; arrays come back as writable copies."""
    if raw[:4] != _MAGIC or len(raw) < 8:
        raise StateDecodeError("not a watchkeeper detector state (bad magic); discard the table entry")
    (hlen,) = struct.unpack("<I", raw[4:8])
    try:
        header = orjson.loads(raw[8 : 8 + hlen])
    except orjson.JSONDecodeError as exc:
        raise StateDecodeError(f"corrupt detector state header: {exc}") from exc
    fields: dict[str, Any] = dict(header["scalars"])
    fields.update({name: float(text) for name, text in header.get("nonfinite", {}).items()})
    pos = 8 + hlen
    for name, dtype, shape in header["arrays"]:
        dt = np.dtype(dtype)
        size = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        if pos + size > len(raw):
            raise StateDecodeError(f"detector state truncated in field {name!r}")
        fields[name] = np.frombuffer(raw, dtype=dt, count=size // dt.itemsize, offset=pos).reshape(shape).copy()
        pos += size
    return header["meta"], fields
