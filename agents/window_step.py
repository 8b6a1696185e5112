"""One `wk.samples` message through the window engine: decode, apply, close, encode. No Faust here, so
the agent stays a few lines and this is tested without a broker."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import orjson

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
    first_seq: int = 0  # emission sequence number of aggregates[0] within its partition


@dataclass
class PartitionProgress:
    """What a partition's snapshot says besides the engine: the last input offset applied and the number
    of aggregates emitted so far (the sequence number of the last one)."""

    offset: int = -1
    seq: int = 0


class WindowStep:
    """Window engines per input partition (watermarks are per partition), sharing one series registry."""

    def __init__(self, topic: str, width: float, allowed_lateness: float) -> None:
        self.topic = topic
        self.width = width
        self.allowed_lateness = allowed_lateness
        self.registry = SeriesRegistry()
        self.engines: dict[int, WindowEngine] = {}
        self.progress: dict[int, PartitionProgress] = {}
        self.messages = 0
        self.samples = 0
        self.windows_emitted = 0

    def engine(self, partition: int) -> WindowEngine:
        eng = self.engines.get(partition)
        if eng is None:
            eng = self.engines[partition] = WindowEngine(self.registry, self.width, self.allowed_lateness)
        return eng

    def snapshot(self, partition: int) -> bytes:
        """Everything needed to resume `partition` after its last processed message."""
        prog = self.progress.setdefault(partition, PartitionProgress())
        head = orjson.dumps({"offset": prog.offset, "seq": prog.seq})
        return len(head).to_bytes(4, "big") + head + self.engine(partition).snapshot()

    def restore(self, partition: int, data: bytes | None) -> None:
        """Resume `partition` from `snapshot()`'s bytes, or from nothing (None: start empty)."""
        if data is None:
            self.engines.pop(partition, None)
            self.progress[partition] = PartitionProgress()
            return
        size = int.from_bytes(data[:4], "big")
        head = orjson.loads(data[4:4 + size])
        self.progress[partition] = PartitionProgress(int(head["offset"]), int(head["seq"]))
        self.engines[partition] = WindowEngine.restore(data[4 + size:], self.registry)

    def forget(self, partition: int) -> None:
        """Drop a partition's state (revoked): it is restored from its snapshot when it comes back."""
        self.engines.pop(partition, None)
        self.progress.pop(partition, None)

    def applied(self, partition: int, offset: int) -> bool:
        """Whether the message at `offset` is already in the partition's state (replayed after a restart)."""
        prog = self.progress.get(partition)
        return prog is not None and offset <= prog.offset

    def process(self, partition: int, offset: int, key: bytes | None, raw: bytes, now: float) -> StepOutput:
        out = StepOutput()
        prog = self.progress.setdefault(partition, PartitionProgress())
        prog.offset = offset
        out.first_seq = prog.seq + 1
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
        prog.seq += len(out.aggregates)
        self.windows_emitted += len(out.aggregates)
        return out

    def failed(self, partition: int, offset: int, key: bytes | None, raw: bytes, exc: Exception,
               now: float) -> StepOutput:
        """A message the step itself could not handle: dead-lettered with the error, never fatal."""
        out = StepOutput()
        prog = self.progress.setdefault(partition, PartitionProgress())
        prog.offset = offset
        out.first_seq = prog.seq + 1
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
