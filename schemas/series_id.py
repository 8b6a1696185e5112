"""The stable 64-bit id of a series: metric name plus its sorted label set (Prometheus' model)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

_SEP = b"\xff"


def series_id(name: str, labels: Mapping[str, str]) -> int:
    """Return the series id: blake2b-64 of name and sorted labels, stable across processes and versions.

    Python's ``hash`` is salted per process, so it cannot be used for an id that is stored and compared.
    """
    h = hashlib.blake2b(digest_size=8)
    h.update(name.encode())
    for key in sorted(labels):
        h.update(_SEP)
        h.update(key.encode())
        h.update(_SEP)
        h.update(labels[key].encode())
    return int.from_bytes(h.digest(), "big")


def format_series_id(sid: int) -> str:
    """The printed form of a series id: 16 lower-case hex digits."""
    return f"{sid:016x}"
