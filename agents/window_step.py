"""One `wk.samples` message through the window engine: decode, apply, close, encode. No Faust here, so
the agent stays a few lines and this is tested without a broker."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.sample_columns import SampleColumns
from core.sample_decode import decode_columns
from core.series_registry import SeriesRegistry
from core.window_output import aggregate_messages
from core.windows import WindowEngine
from schemas.codec import SchemaError, encode
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
            cols = decode_columns(raw, self.registry, source=key.decode("utf-8", "replace") if key else "")
        except SchemaError as exc:
            out.deadletters.append((key, self._dead(raw, partition, offset, str(exc), now)))
            return out
        self.samples += len(cols)
        eng = self.engine(partition)
        late = eng.ingest(cols)
        if late.any():
            reason = (f"late: {int(late.sum())} of {len(cols)} samples before the watermark "
                      f"{eng.watermark:.3f} (their windows already closed)")
            late_raw = encode(late_batch(cols.take(late), self.registry, key.decode("utf-8", "replace") if key else ""))
            out.deadletters.append((key, self._dead(late_raw, partition, offset, reason, now)))
        out.aggregates = aggregate_messages(eng.advance(), self.registry)
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


def late_batch(cols: SampleColumns, registry: SeriesRegistry, source: str) -> SampleBatch:
    """Late points as a batch of their own (one block per series, labels merged), for the dead letter."""
    blocks = []
    for s in np.unique(cols.series).tolist():
        mine = cols.series == s
        blocks.append(SeriesBlock(name=registry.names[s], labels=registry.labels[s], kind=registry.kinds[s],
                                  ts=cols.ts[mine].tolist(), values=cols.values[mine].tolist()))
    return SampleBatch(source=source, series=blocks)
