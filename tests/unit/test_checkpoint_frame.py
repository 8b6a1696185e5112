"""The one checkpoint framing: what it writes reads back, checkpoints written in the unversioned framing
before it still read, and bytes that are neither are refused with a clear error."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchkeeper.core.checkpoint_frame import VERSION, CheckpointFrameError, frame, unframe

heads = st.dictionaries(st.text(max_size=8), st.integers(-10**6, 10**6) | st.text(max_size=8), max_size=5)


@given(head=heads, body=st.binary(max_size=64))
def test_a_frame_reads_back_its_head_and_body(head: dict[str, object], body: bytes) -> None:
    data = frame(head, body[:10], body[10:])
    framed = unframe(data)
    assert (framed.head, data[framed.body_at:], framed.version) == (head, body, VERSION)


@given(head=heads, body=st.binary(max_size=64))
def test_a_checkpoint_in_the_unversioned_framing_still_reads(head: dict[str, object], body: bytes) -> None:
    raw = orjson.dumps(head)
    data = len(raw).to_bytes(4, "big") + raw + body
    framed = unframe(data)
    assert (framed.head, data[framed.body_at:], framed.version) == (head, body, 0)


def test_a_newer_framing_version_says_to_upgrade_the_worker() -> None:
    data = bytearray(frame({"offset": 1}))
    data[2] = VERSION + 1
    with pytest.raises(CheckpointFrameError, match="upgrade the worker"):
        unframe(bytes(data))


@pytest.mark.parametrize(("data", "match"), [
    (b"{\"offset\": 1}", "not a checkpoint"),
    (b"WK\x01\x00\x00", "truncated checkpoint: 5 bytes"),
    (frame({"offset": 1})[:-2], "a head of 12 bytes"),
    (b"WK\x01\x00\x00\x00\x02{x", "not JSON"),
])
def test_bytes_that_are_no_checkpoint_are_refused(data: bytes, match: str) -> None:
    with pytest.raises(CheckpointFrameError, match=match):
        unframe(data)
