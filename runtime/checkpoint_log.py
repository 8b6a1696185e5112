"""A checkpoint larger than one Kafka message, as consecutive records of its changelog partition.

A checkpoint of up to `limit` bytes is one record, as it always was. A larger one (an anomaly partition
holding many series' detectors: ~45 KiB each for `calibrated`) is cut into parts, each a record of its
own, written in order to the same changelog partition by the partition's one owner:

    b"WC" | version (1 byte) | part index (4 bytes) | part count (4 bytes) | the part's bytes

A worker killed while writing them leaves the first parts only: the newest *complete* checkpoint is then
the one before (`newest_complete`), and the replay from it makes the same output again (the exactly-once
rule skips what is already sent). Whole checkpoints start with ``WK`` or a 0 byte
(`core.checkpoint_frame`), never with ``WC``.
"""

from __future__ import annotations

from collections.abc import Sequence

PART_MAGIC = b"WC\x01"
_HEAD = len(PART_MAGIC) + 8


def cut(data: bytes, limit: int) -> list[bytes]:
    """The records that hold `data`: itself when it fits in `limit` bytes, else its parts."""
    if len(data) <= limit:
        return [data]
    size = max(1, limit - _HEAD)
    pieces = [data[at:at + size] for at in range(0, len(data), size)]
    n = len(pieces).to_bytes(4, "big")
    return [PART_MAGIC + i.to_bytes(4, "big") + n + piece for i, piece in enumerate(pieces)]


def part_of(value: bytes) -> tuple[int, int] | None:
    """(index, count) of a part record; None for a whole checkpoint."""
    if not value.startswith(PART_MAGIC) or len(value) < _HEAD:
        return None
    at = len(PART_MAGIC)
    return int.from_bytes(value[at:at + 4], "big"), int.from_bytes(value[at + 4:at + 8], "big")


def newest_complete(values: Sequence[bytes]) -> bytes | None:
    """The newest complete checkpoint among consecutive records of a changelog partition (oldest first):
    a whole one, or a run of parts 0..n-1 of n in order. None when the records hold none."""
    i = len(values) - 1
    while i >= 0:
        part = part_of(values[i])
        if part is None:
            return bytes(values[i])
        index, count = part
        first = i - count + 1
        if index == count - 1 and first >= 0 and all(part_of(values[first + k]) == (k, count) for k in range(count)):
            return b"".join(bytes(values[first + k][_HEAD:]) for k in range(count))
        i -= 1
    return None


def parts_needed(last: bytes) -> int:
    """How many records, ending with `last`, a complete checkpoint ending there spans (1 for a whole one)."""
    part = part_of(last)
    return 1 if part is None else part[1]
