"""One `wk.samples` message through the window engine: decode, apply, close, encode. No Faust here, so
the agent stays a few lines and this is tested without a broker."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import orjson

from core.sample_columns import SampleColumns
from core.sample_decode import OneSample, decode_samples
from core.series_registry import SeriesRegistry
from core.window_output import aggregate_messages
from core.windows import WindowEngine
from schemas.codec import SchemaError, encode
from schemas.deadletter import DeadLetter
from schemas.samples import SampleBatch, SeriesBlock

log = logging.getLogger("watchkeeper.windows")
_LATE_ONE = np.ones(1, dtype=bool)


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
        return self.process_many(partition, [(offset, key, raw)], now)

    def process_many(self, partition: int, messages: Sequence[tuple[int, bytes | None, bytes]],
                     now: float) -> StepOutput:
        """Messages (offset, key, value) of one partition, in offset order, as one step: each is decoded,
        checked for lateness and moves the watermark in turn, exactly as if processed alone, but the
        windows they close are gathered, formatted and returned once (same windows, same order, same
        sequence numbers). A message the step cannot handle is dead-lettered with the error, never fatal."""
        out = StepOutput()
        prog = self.progress.setdefault(partition, PartitionProgress())
        out.first_seq = prog.seq + 1
        eng = self.engine(partition)
        registry = self.registry
        for offset, key, raw in messages:
            prog.offset = offset
            self.messages += 1
            source = key.decode("utf-8", "replace") if key else ""
            try:
                got = decode_samples(raw, registry, source=source)
                if type(got) is OneSample:
                    self.samples += 1
                    if eng.ingest_sample(*got):
                        self._late(out, got.columns(), _LATE_ONE, partition, offset, key, source, now)
                else:
                    cols: SampleColumns = got  # type: ignore[assignment]
                    self.samples += len(cols)
                    late = eng.ingest(cols)
                    if late.any():
                        self._late(out, cols, late, partition, offset, key, source, now)
                eng.advance(emit=False)
            except SchemaError as exc:
                out.deadletters.append((key, self._dead(raw, partition, offset, str(exc), now)))
            except Exception as exc:  # a worker never dies on bad data
                log.exception("window step failed at %s[%d]@%d", self.topic, partition, offset)
                out.deadletters.append((key, self._dead(raw, partition, offset, _internal(exc), now)))
        out.aggregates = aggregate_messages(eng.advance(), registry)
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
        out.deadletters.append((key, self._dead(raw, partition, offset, _internal(exc), now)))
        return out

    def _late(self, out: StepOutput, cols: SampleColumns, late: np.ndarray, partition: int, offset: int,
              key: bytes | None, source: str, now: float) -> None:
        eng = self.engines[partition]
        reason = (f"late: {int(late.sum())} of {len(cols)} samples before the watermark "
                  f"{eng.watermark:.3f} (their windows already closed)")
        late_raw = encode(late_batch(cols.take(late), self.registry, source))
        out.deadletters.append((key, self._dead(late_raw, partition, offset, reason, now)))

    def _dead(self, raw: bytes, partition: int, offset: int, reason: str, now: float) -> bytes:
        dl = DeadLetter.of(raw, topic=self.topic, partition=partition, offset=offset, reason=reason, time=now)
        return encode(dl)


def _internal(exc: Exception) -> str:
    return f"internal error: {type(exc).__name__}: {exc}"


def late_batch(cols: SampleColumns, registry: SeriesRegistry, source: str) -> SampleBatch:
    """Late points as a batch of their own (one block per series, labels merged), for the dead letter."""
    blocks = []
    for s in np.unique(cols.series).tolist():
        mine = cols.series == s
        blocks.append(SeriesBlock(name=registry.names[s], labels=registry.labels[s], kind=registry.kinds[s],
                                  ts=cols.ts[mine].tolist(), values=cols.values[mine].tolist()))
    return SampleBatch(source=source, series=blocks)
