"""A checkpoint larger than a Kafka message as consecutive part records: cut, and read back whole, also
after a write that a crash cut short (the newest complete checkpoint is the one before); and the keyed
states checkpoint (`runtime.checkpoint.Checkpoint`) round trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchkeeper.core.checkpoint_frame import CheckpointFrameError, frame
from watchkeeper.runtime.checkpoint import Checkpoint
from watchkeeper.runtime.checkpoint_log import cut, newest_complete, part_of, parts_needed


def test_a_checkpoint_that_fits_is_one_record_as_before() -> None:
    data = frame({"offset": 3}, b"body")
    assert cut(data, 1000) == [data] and part_of(data) is None and parts_needed(data) == 1
    assert newest_complete([data]) == data


def test_a_larger_checkpoint_is_cut_into_parts_and_read_back_whole() -> None:
    data = frame({"offset": 3}, bytes(range(256)) * 40)
    parts = cut(data, 1000)
    assert len(parts) == 11 and all(len(p) <= 1000 for p in parts)
    assert [part_of(p) for p in parts] == [(i, 11) for i in range(11)] and parts_needed(parts[-1]) == 11
    older = frame({"offset": 1}, b"old")
    assert newest_complete([older, *parts]) == data


def test_a_write_cut_short_leaves_the_checkpoint_before_it_as_the_newest() -> None:
    old, new = frame({"offset": 1}, b"x" * 3000), frame({"offset": 2}, b"y" * 3000)
    old_parts, new_parts = cut(old, 1000), cut(new, 1000)
    assert newest_complete([*old_parts, *new_parts[:2]]) == old
    assert newest_complete([frame({"offset": 0}, b""), *new_parts[:2]]) == frame({"offset": 0}, b"")
    assert newest_complete(new_parts[:2]) is None  # nothing complete: the partition starts afresh
    assert newest_complete(new_parts[1:]) is None  # its first part not among the records read


@given(st.binary(max_size=5000), st.integers(min_value=20, max_value=2000), st.binary(max_size=100))
def test_any_checkpoint_survives_cutting(body: bytes, limit: int, before: bytes) -> None:
    data = frame({"offset": 7}, body)
    assert newest_complete([frame({"offset": 6}, before), *cut(data, limit)]) == data


def test_keyed_states_round_trip_in_the_one_framing() -> None:
    cp = Checkpoint(41, 3, {b"grp/Alert\x00abcdef0123456789": b"\x00\x01state", b"k2": b""})
    assert Checkpoint.decode(cp.encode()) == cp
    shard = Checkpoint(-1, 9, {b"unit": bytes(range(256))}, {"shard": 3, "watermark": None, "replay": {"0": [7]}})
    assert Checkpoint.decode(shard.encode()) == shard
    assert cp.encode()[:2] == b"WK"
    with pytest.raises(CheckpointFrameError, match="keyed-state checkpoint"):
        Checkpoint.decode(frame({"offset": 1, "seq": 0, "keys": [["a", 10]]}, b"short"))
    with pytest.raises(CheckpointFrameError, match="not a keyed-state checkpoint"):
        Checkpoint.decode(frame({"offset": 1}))
