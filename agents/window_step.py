"""One `wk.samples` message through the window engine: decode, apply, close, encode. No Faust here, so
the agent stays a few lines and this is tested without a broker."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import orjson

from core.sample_columns import columns_of
from core.series_registry import SeriesRegistry
from core.window_output import aggregate_records
from core.windows import WindowEngine
from schemas.codec import SchemaError, decode_sample_message, encode
from schemas.deadletter import DeadLetter
from schemas.samples import SampleBatch, SeriesBlock


@dataclass
class StepOutput:
    aggregates: list[tuple[bytes, bytes]] = field(default_factory=list)  # (series id, WindowAggregate)
    deadletters: list[tuple[bytes | None, bytes]] = field(default_factory=list)  # (original key, DeadLetter)


class WindowStep:
    """Window engines per input partition (watermarks are per partition), sharing one series registry."""

    def __init__(self, topic: str, width: float, allowed_lateness: float) -> None:
        self.topic = topic
        self.width = width
        self.allowed_lateness = allowed_lateness
        self.registry = SeriesRegistry()
        self.engines: dict[int, WindowEngine] = {}
        self.messages = 0
        self.samples = 0
        self.windows_emitted = 0

    def engine(self, partition: int) -> WindowEngine:
        eng = self.engines.get(partition)
        if eng is None:
            eng = self.engines[partition] = WindowEngine(self.registry, self.width, self.allowed_lateness)
        return eng

    def process(self, partition: int, offset: int, key: bytes | None, raw: bytes, now: float) -> StepOutput:
        out = StepOutput()
        self.messages += 1
        try:
            batch = decode_sample_message(raw, source=key.decode("utf-8", "replace") if key else "")
        except SchemaError as exc:
            out.deadletters.append((key, self._dead(raw, partition, offset, str(exc), now)))
            return out
        cols = columns_of(batch, self.registry)
        self.samples += len(cols)
        eng = self.engine(partition)
        late = eng.ingest(cols)
        if late.any():
            reason = (f"late: {int(late.sum())} of {len(cols)} samples before the watermark "
                      f"{eng.watermark:.3f} (their windows already closed)")
            late_raw = encode(_subset(batch, late))
            out.deadletters.append((key, self._dead(late_raw, partition, offset, reason, now)))
        for rec in aggregate_records(eng.advance(), self.registry):
            out.aggregates.append((rec["series_id"].encode(), orjson.dumps(rec)))
        self.windows_emitted += len(out.aggregates)
        return out

    def failed(self, partition: int, offset: int, key: bytes | None, raw: bytes, exc: Exception,
               now: float) -> StepOutput:
        """A message the step itself could not handle: dead-lettered with the error, never fatal."""
        out = StepOutput()
        reason = f"internal error: {type(exc).__name__}: {exc}"
        out.deadletters.append((key, self._dead(raw, partition, offset, reason, now)))
        return out

    def _dead(self, raw: bytes, partition: int, offset: int, reason: str, now: float) -> bytes:
        dl = DeadLetter.of(raw, topic=self.topic, partition=partition, offset=offset, reason=reason, time=now)
        return encode(dl)


def _subset(batch: SampleBatch, mask: np.ndarray) -> SampleBatch:
    """The points of `batch` selected by a flat mask (in block order), as a batch of their own."""
    blocks = []
    pos = 0
    for block in batch.series:
        n = len(block.ts)
        sel = np.flatnonzero(mask[pos:pos + n])
        pos += n
        if len(sel):
            blocks.append(SeriesBlock(name=block.name, labels=block.labels, kind=block.kind,
                                      ts=[block.ts[i] for i in sel], values=[block.values[i] for i in sel]))
    return SampleBatch(source=batch.source, labels=batch.labels, series=blocks)
