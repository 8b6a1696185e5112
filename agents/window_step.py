"""One `wk.samples` message through the window engine: decode, apply, close, encode. No Faust here, so
the agent stays a few lines and this is tested without a broker.

Time: each message comes with its processing time (the agent gives the Kafka record's timestamp: it is
stored with the message, so a replay after a restart sees the same times and decides the same `future`
samples and idle sources as the live run did; set `message.timestamp.type=LogAppendTime` on the samples
topic of a real Kafka to make it the broker's clock). A partition that gets no messages at all is moved on
by `tick()`, which the agent calls once the partition was quiet for `idle_timeout` by its own clock.

Source: the message's Kafka key (DESIGN.md: the host or producer id); a message without a key is the
batch's `source` field, or a single sample's `host` or `instance` label.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from watchkeeper.core.checkpoint_frame import deflate, frame, inflate, unframe
from watchkeeper.core.sample_columns import SampleColumns
from watchkeeper.core.sample_decode import OneSample, decode_samples, message_source
from watchkeeper.core.sample_rejects import MAX_ABS_VALUE, MAX_TS, MIN_TS, Reject
from watchkeeper.core.series_registry import DEFAULT_MAX_SERIES, SeriesRegistry
from watchkeeper.core.window_output import aggregate_messages
from watchkeeper.core.windows import WindowEngine
from watchkeeper.runtime.partition_state import PartitionProgress, Record, StepOutput
from watchkeeper.schemas.codec import SchemaError, encode
from watchkeeper.schemas.deadletter import DeadLetter
from watchkeeper.schemas.samples import SampleBatch, SeriesBlock

log = logging.getLogger("watchkeeper.windows")
_ONE = [np.full(1, r, dtype=np.int8) for r in Reject]


@dataclass(frozen=True)
class WindowLimits:
    """The window engine's settings (`windows` in watchkeeper.yaml), as the step needs them."""

    width: float = 10.0
    allowed_lateness: float = 5.0
    max_future: float = 600.0
    idle_timeout: float | None = None  # None: 2 x width + allowed_lateness
    max_series: int = DEFAULT_MAX_SERIES
    series_idle: float | None = None  # None: max(1 h, 4 x idle_timeout)
    max_sources: int = 100_000  # per input partition's engine (`windows.max_sources`)


class WindowStep:
    """Window engines per input partition (watermarks per source within each), sharing one series registry."""

    def __init__(self, topic: str, width: float = 10.0, allowed_lateness: float = 5.0,
                 limits: WindowLimits | None = None) -> None:
        self.topic = topic
        self.limits = limits or WindowLimits(width, allowed_lateness)
        self.width = self.limits.width
        self.allowed_lateness = self.limits.allowed_lateness
        self.registry = SeriesRegistry(self.limits.max_series)
        self.engines: dict[int, WindowEngine] = {}
        self.progress: dict[int, PartitionProgress] = {}
        self.messages = 0
        self.samples = 0
        self.windows_emitted = 0
        self.rejected: Counter[str] = Counter()  # samples refused since start, by reason
        self.series_released = 0

    def engine(self, partition: int) -> WindowEngine:
        eng = self.engines.get(partition)
        if eng is None:
            lim = self.limits
            eng = self.engines[partition] = WindowEngine(
                self.registry, lim.width, lim.allowed_lateness, max_future=lim.max_future,
                idle_timeout=lim.idle_timeout, series_idle=lim.series_idle, max_sources=lim.max_sources)
        return eng

    def snapshot(self, partition: int) -> bytes:
        """Everything needed to resume `partition` after its last processed message, zlib-compressed: it
        is one Kafka message, and 25,000 series with open windows are 5 MB raw (past the producer's 4 MiB
        `max_request_size`, which crashed the worker) but ~0.25 MB compressed (labels repeat, arrays
        are mostly small integers); level 1 costs ~70 ms for those 5 MB."""
        prog = self.progress.setdefault(partition, PartitionProgress())
        return deflate(frame({"offset": prog.offset, "seq": prog.seq}, self.engine(partition).snapshot()))

    def restore(self, partition: int, data: bytes | None) -> None:
        """Resume `partition` from `snapshot()`'s bytes, or from nothing (None: start empty)."""
        if data is None:
            self.engines.pop(partition, None)
            self.progress[partition] = PartitionProgress()
            return
        data = inflate(data)
        framed = unframe(data)
        head = framed.head
        self.progress[partition] = PartitionProgress(int(head["offset"]), int(head["seq"]))
        lim = self.limits
        self.engines[partition] = WindowEngine.restore(
            data[framed.body_at:], self.registry, max_future=lim.max_future, idle_timeout=lim.idle_timeout,
            series_idle=lim.series_idle, max_sources=lim.max_sources)

    def forget(self, partition: int) -> None:
        """Drop a partition's state (revoked): it is restored from its snapshot when it comes back."""
        self.engines.pop(partition, None)
        self.progress.pop(partition, None)

    def release_series(self) -> int:
        """Release the registry's series that no partition's engine holds state for (memory only: no output
        depends on it). Returns how many."""
        held = [eng.referenced_series() for eng in self.engines.values()]
        n = self.registry.release(np.concatenate(held) if held else np.zeros(0, dtype=np.int64))
        self.series_released += n
        return n

    def applied(self, partition: int, offset: int) -> bool:
        """Whether the message at `offset` is already in the partition's state (replayed after a restart)."""
        prog = self.progress.get(partition)
        return prog is not None and offset <= prog.offset

    def process(self, partition: int, offset: int, key: bytes | None, raw: bytes, now: float) -> StepOutput:
        return self.process_many(partition, [(offset, key, raw)], now)

    def process_many(self, partition: int, messages: Sequence[tuple[int, bytes | None, bytes]],
                     now: float, times: Sequence[float] | None = None) -> StepOutput:
        """Messages (offset, key, value) of one partition, in offset order, as one step: each is decoded,
        checked and moves its source's watermark in turn, exactly as if processed alone, but the windows
        they close are gathered, formatted and returned once (same windows, same order, same sequence
        numbers). `times[i]` is message i's processing time (default: `now` for all; `now` also dates the
        dead letters). A message the step cannot handle is dead-lettered with the error, never fatal; a
        refused sample is dead-lettered with its reason, and the rest of its message is applied."""
        out = StepOutput()
        prog = self.progress.setdefault(partition, PartitionProgress())
        out.first_seq = prog.seq + 1
        eng = self.engine(partition)
        registry = self.registry
        before = self.samples
        source_ids = eng.source_ids
        for i, (offset, key, raw) in enumerate(messages):
            proc = now if times is None else times[i]
            prog.offset = offset
            self.messages += 1
            if registry.refused:
                registry.clear_refused()
            try:
                source = key.decode("utf-8", "replace") if key else ""
                got = decode_samples(raw, registry, source=source)
                if not source:
                    source = message_source(raw, got, registry)
                src = source_ids.get(source)
                if src is None:
                    src = eng.admit_source(source)  # -1: refused, `source_limit`
                if type(got) is OneSample:
                    self.samples += 1
                    verdict = eng.ingest_sample(*got, src, proc)
                    if verdict:
                        self._refused(out, got.columns(), _ONE[verdict], partition, offset, key, source, proc, now)
                else:
                    cols: SampleColumns = got  # type: ignore[assignment]
                    self.samples += len(cols)
                    verdicts = eng.ingest(cols, src, proc)
                    if verdicts.any():
                        self._refused(out, cols, verdicts, partition, offset, key, source, proc, now)
                eng.advance(emit=False)
            except SchemaError as exc:
                out.deadletters.append((key, self._dead(raw, partition, offset, str(exc), now)))
                out.dead["invalid"] += 1
            except Exception as exc:  # a worker never dies on bad data
                log.exception("window step failed at %s[%d]@%d", self.topic, partition, offset)
                out.deadletters.append((key, self._dead(raw, partition, offset, _internal(exc), now)))
                out.dead["internal_error"] += 1
        self._emit(out, partition, eng.advance())
        out.applied = self.samples - before
        return out

    def process_records(self, partition: int, records: Sequence[Record], now: float) -> StepOutput:
        """The runtime's entry (`runtime.partition_state.PartitionStep`): records (offset, key, value,
        processing time) as one batch; if the step itself fails, each record is dead-lettered with the
        error and the partition goes on after them."""
        before = self.samples
        try:
            return self.process_many(partition, [r[:3] for r in records], now, times=[r[3] for r in records])
        except Exception as exc:  # a worker never dies on bad data: dead-letter and go on
            log.exception("window step failed at %s[%d]@%d..%d", self.topic, partition, records[0][0],
                          records[-1][0])
            out = StepOutput(first_seq=self.progress[partition].seq + 1, applied=self.samples - before)
            for offset, key, value, _ in records:
                failed = self.failed(partition, offset, key, value, exc, now)
                out.deadletters += failed.deadletters
                out.dead += failed.dead
            return out

    @property
    def idle_timeout(self) -> float:
        lim = self.limits
        return lim.idle_timeout if lim.idle_timeout is not None else 2 * lim.width + lim.allowed_lateness

    def tick(self, partition: int) -> StepOutput:
        """A partition that got no message for `idle_timeout` (the caller's clock says so): every source
        sending to it is idle, so close their windows, at the engine's `quiet_close_time()`. That time is a
        function of the input, so a restart replaying the input up to where a tick happened and ticking there
        closes exactly the same windows."""
        out = StepOutput()
        prog = self.progress.setdefault(partition, PartitionProgress())
        out.first_seq = prog.seq + 1
        eng = self.engines.get(partition)
        at = eng.quiet_close_time() if eng is not None else None
        if eng is None or at is None:
            return out
        eng.tick(at)
        self._emit(out, partition, eng.advance())
        out.tick_after = prog.offset
        return out

    def _emit(self, out: StepOutput, partition: int, closed: object) -> None:
        out.records = aggregate_messages(closed, self.registry)  # type: ignore[arg-type]
        self.progress[partition].seq += len(out.records)
        self.windows_emitted += len(out.records)

    def failed(self, partition: int, offset: int, key: bytes | None, raw: bytes, exc: Exception,
               now: float) -> StepOutput:
        """A message the step itself could not handle: dead-lettered with the error, never fatal."""
        out = StepOutput()
        prog = self.progress.setdefault(partition, PartitionProgress())
        prog.offset = offset
        out.first_seq = prog.seq + 1
        out.deadletters.append((key, self._dead(raw, partition, offset, _internal(exc), now)))
        out.dead["internal_error"] += 1
        return out

    def _refused(self, out: StepOutput, cols: SampleColumns, verdicts: np.ndarray, partition: int, offset: int,
                 key: bytes | None, source: str, proc: float, now: float) -> None:
        """One dead letter per reason, holding the refused points as a batch of their own."""
        eng = self.engines[partition]
        n = len(cols)
        for code in np.unique(verdicts[verdicts > 0]).tolist():
            reason = Reject(code)
            mine = verdicts == code
            k = int(mine.sum())
            out.rejected[reason.label] += k
            out.dead[reason.label] += 1
            self.rejected[reason.label] += k
            text = _REASONS[reason](k, n, source, eng.watermark(eng.source_ids.get(source, -1)), proc, self.limits)
            raw = encode(rejected_batch(cols.take(mine), self.registry, source))
            out.deadletters.append((key, self._dead(raw, partition, offset, text, now)))

    def _dead(self, raw: bytes, partition: int, offset: int, reason: str, now: float) -> bytes:
        dl = DeadLetter.of(raw, topic=self.topic, partition=partition, offset=offset, reason=reason, time=now)
        return encode(dl)


_REASONS = {
    Reject.LATE: lambda k, n, src, wm, proc, lim: (
        f"late: {k} of {n} samples before the watermark {wm:.3f} of source {src!r} (their windows already closed)"),
    Reject.FUTURE: lambda k, n, src, wm, proc, lim: (
        f"future: {k} of {n} samples more than windows.max_future = {lim.max_future:g} s ahead of processing "
        f"time {proc:.3f}: is the clock of source {src!r} right?"),
    Reject.BAD_TIMESTAMP: lambda k, n, src, wm, proc, lim: (
        f"bad_timestamp: {k} of {n} samples with a time that is not finite or outside {MIN_TS:.0f}.."
        f"{MAX_TS:.0f} epoch seconds (1970 to 2262)"),
    Reject.BAD_VALUE: lambda k, n, src, wm, proc, lim: (
        f"bad_value: {k} of {n} samples with a value that is not finite or beyond +-{MAX_ABS_VALUE:g}"),
    Reject.SERIES_LIMIT: lambda k, n, src, wm, proc, lim: (
        f"series_limit: {k} of {n} samples of new series refused: the worker already holds "
        f"windows.max_series = {lim.max_series} series"),
    Reject.SOURCE_LIMIT: lambda k, n, src, wm, proc, lim: (
        f"source_limit: {k} of {n} samples of new source {src!r} refused: its partition already holds "
        f"windows.max_sources = {lim.max_sources} sources (idle ones are forgotten after "
        f"windows.series_idle_seconds)"),
}


def _internal(exc: Exception) -> str:
    return f"internal error: {type(exc).__name__}: {exc}"


def rejected_batch(cols: SampleColumns, registry: SeriesRegistry, source: str) -> SampleBatch:
    """Refused points as a batch of their own (one block per series, labels merged), for the dead letter.
    Built without validation: the points are the ones the contract or the engine refused (a time of 1e300
    is what the dead letter must show)."""
    blocks = []
    uniq, first = np.unique(cols.series, return_index=True)
    for s in uniq[np.argsort(first)].tolist():  # in order of appearance
        mine = cols.series == s
        name, labels, kind = ((registry.names[s], registry.labels[s], registry.kinds[s]) if s >= 0
                              else registry.refused[-s - 1])
        blocks.append(SeriesBlock.model_construct(name=name, labels=labels, kind=kind, ts=cols.ts[mine].tolist(),
                                                  values=cols.values[mine].tolist()))
    return SampleBatch.model_construct(v=1, source=source, labels={}, series=blocks)

