"""A partition's checkpoint as keyed states: the one `Checkpoint` class of the stateful agents whose state
is many small independent states (one per (rule, series) for anomaly rules; one per rule unit for the
rule engine), in the one framing (`core.checkpoint_frame`).

    head: {"offset": last input offset applied, "seq": last output sequence number,
           "keys": [[key, size], ...]}            body: the states' bytes, in the keys' order

A state's bytes are its owner's (e.g. `core.anomaly_scoring.SeriesAnomaly.to_bytes`); this only frames
them, so a partition's states are restored lazily, one as it is first needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.checkpoint_frame import CheckpointFrameError, frame, unframe


@dataclass
class Checkpoint:
    """One input partition's resume point: where its input was applied up to, the last output sequence
    number it made, and its states by key."""

    offset: int = -1
    seq: int = 0
    states: dict[bytes, bytes] = field(default_factory=dict)

    def encode(self) -> bytes:
        keys = [[key.decode("utf-8", "surrogateescape"), len(value)] for key, value in self.states.items()]
        return frame({"offset": self.offset, "seq": self.seq, "keys": keys}, *self.states.values())

    @classmethod
    def decode(cls, data: bytes) -> Checkpoint:
        framed = unframe(data)
        head = framed.head
        try:
            offset, seq, keys = int(head["offset"]), int(head["seq"]), head["keys"]
            states: dict[bytes, bytes] = {}
            at = framed.body_at
            for name, size in keys:
                states[str(name).encode("utf-8", "surrogateescape")] = bytes(data[at:at + int(size)])
                at += int(size)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointFrameError(f"not a keyed-state checkpoint: {exc}") from None
        if at != len(data):
            raise CheckpointFrameError(f"keyed-state checkpoint of {len(data)} bytes, its keys cover {at}")
        return cls(offset, seq, states)
