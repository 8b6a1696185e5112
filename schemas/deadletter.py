"""A message that could not be used, kept with the reason so nothing is silently lost."""

from __future__ import annotations

import base64
from typing import Literal

from pydantic import BaseModel, ConfigDict


class DeadLetter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    v: Literal[1] = 1
    original: str  # base64 of the original (or, for late points, the late subset re-encoded) bytes
    topic: str
    partition: int
    offset: int
    reason: str
    time: float

    @classmethod
    def of(cls, raw: bytes, *, topic: str, partition: int, offset: int, reason: str, time: float) -> DeadLetter:
        return cls(
            original=base64.b64encode(raw).decode(),
            topic=topic,
            partition=partition,
            offset=offset,
            reason=reason,
            time=time,
        )

    def original_bytes(self) -> bytes:
        return base64.b64decode(self.original)
