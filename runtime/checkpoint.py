"""A partition's checkpoint as keyed states: the one `Checkpoint` class of the stateful agents whose state
is many small independent states (one per (rule, series) for anomaly rules; one per rule unit for the
rule engine), in the one framing (`core.checkpoint_frame`).

    head: {"offset": last input offset applied, "seq": last output sequence number,
           "keys": [[key, size], ...], "meta": {...}}       body: the states' bytes, in the keys' order

`meta` is the owner's own resume facts besides offset and sequence, anything orjson encodes (the rule
engine's shard, owner, watermark, barriers and replay marks would go there, its units' engine snapshots
in `states`: the class is meant to replace `agents.rules_step.Checkpoint` when the rules agent moves onto
the runtime).

A state's bytes are its owner's (e.g. `core.anomaly_scoring.SeriesAnomaly.to_bytes`); this only frames
them, so a partition's states are restored lazily, one as it is first needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from watchkeeper.core.checkpoint_frame import CheckpointFrameError, frame, unframe


@dataclass
class Checkpoint:
    """One input partition's resume point: where its input was applied up to, the last output sequence
    number it made, and its states by key."""

    offset: int = -1
    seq: int = 0
    states: dict[bytes, bytes] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        keys = [[key.decode("utf-8", "surrogateescape"), len(value)] for key, value in self.states.items()]
        head = {"offset": self.offset, "seq": self.seq, "keys": keys, "meta": self.meta}
        return frame(head, *self.states.values())

    @classmethod
    def decode(cls, data: bytes) -> Checkpoint:
        framed = unframe(data)
        head = framed.head
        try:
            offset, seq, keys, meta = int(head["offset"]), int(head["seq"]), head["keys"], head.get("meta", {})
            if not isinstance(meta, dict):
                raise TypeError(f"meta is a {type(meta).__name__}")
            states: dict[bytes, bytes] = {}
            at = framed.body_at
            for name, size in keys:
                states[str(name).encode("utf-8", "surrogateescape")] = bytes(data[at:at + int(size)])
                at += int(size)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointFrameError(f"not a keyed-state checkpoint: {exc}") from None
        if at != len(data):
            raise CheckpointFrameError(f"keyed-state checkpoint of {len(data)} bytes, its keys cover {at}")
        return cls(offset, seq, states, meta)
