"""The benchmark workload (issue 4): N samples of S series, one sample per series per second, 10 s windows.

Series are spread over sources (hosts); each source always goes to the same partition of the 8-partition
samples topic, and its messages are in event-time order, as a real producer's are. After the data, each
source sends one marker sample far enough ahead to close every window of its own (watermarks are per
source; the marker's series is ignored by the verifier), so all N / S / 10 * S windows are expected.

Clock skew (`skewed`, `far_future`): the listed sources' clocks run `skew` seconds ahead (their samples
are refused as `future` when `t0` is near the present: their windows are not expected, `expected_sources`
lists the others), and source `far_future` first sends one sample a year ahead, then its normal data
(whose windows are expected: one bad sample must not blind a source, nor its partition).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson

PARTITIONS = 8
MARKER = "bench_watermark"
T0 = 1_700_000_000.0


@dataclass(frozen=True)
class Workload:
    samples: int = 1_000_000
    series: int = 2_000
    series_per_source: int = 50
    seconds_per_message: int = 10  # batched: series_per_source x seconds_per_message points per message
    counter_every: int = 10  # every 10th series is a counter
    seed: int = 7
    t0: float = T0
    skewed: tuple[int, ...] = ()  # sources whose clock runs `skew` seconds ahead
    skew: float = 3600.0
    far_future: int | None = None  # a source that first sends one sample a year ahead

    @property
    def expected_sources(self) -> set[str]:
        """The sources whose windows are expected (not skewed)."""
        return {f"host-{src}" for src in range(self.sources) if src not in self.skewed}

    def clock(self, src: int) -> float:
        return self.t0 + (self.skew if src in self.skewed else 0.0)

    @property
    def seconds(self) -> int:
        return self.samples // self.series

    @property
    def sources(self) -> int:
        return self.series // self.series_per_source

    @property
    def expected_windows(self) -> int:
        return self.series * -(-self.seconds // 10)

    def values(self) -> np.ndarray:
        """(series, seconds) values: lognormal gauges, monotonic counters with a reset in the middle."""
        rng = np.random.default_rng(self.seed)
        v = rng.lognormal(3.0, 1.0, size=(self.series, self.seconds)).round(3)
        for s in range(0, self.series, self.counter_every):
            c = np.cumsum(v[s])
            c[self.seconds // 2:] -= c[self.seconds // 2 - 1]  # a counter reset
            v[s] = c
        return v

    def block(self, s: int, ts: list[float], vals: list[float]) -> dict[str, object]:
        kind = "counter" if s % self.counter_every == 0 else "gauge"
        name = "bench_requests_total" if kind == "counter" else "bench_value"
        return {"name": name, "labels": {"series": str(s)}, "kind": kind, "ts": ts, "values": vals}

    def batched(self) -> dict[int, list[tuple[bytes, bytes]]]:
        """Messages per partition: per source, series_per_source series x seconds_per_message points."""
        v = self.values()
        out: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in range(PARTITIONS)}
        self._far_future(out)
        for t in range(0, self.seconds, self.seconds_per_message):
            for src in range(self.sources):
                ts = [self.clock(src) + x for x in range(t, min(t + self.seconds_per_message, self.seconds))]
                first = src * self.series_per_source
                blocks = [self.block(s, ts, v[s, t:t + len(ts)].tolist())
                          for s in range(first, first + self.series_per_source)]
                msg = {"v": 1, "source": f"host-{src}", "labels": {"host": f"host-{src}"}, "series": blocks}
                out[src % PARTITIONS].append((f"host-{src}".encode(), orjson.dumps(msg)))
        self._markers(out)
        return out

    def single(self) -> dict[int, list[tuple[bytes, bytes]]]:
        """The same samples, one `Sample` per message (as third-party producers send them)."""
        v = self.values()
        out: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in range(PARTITIONS)}
        self._far_future(out)
        for t in range(self.seconds):
            for src in range(self.sources):
                key = f"host-{src}".encode()
                part = out[src % PARTITIONS]
                for s in range(src * self.series_per_source, (src + 1) * self.series_per_source):
                    kind = "counter" if s % self.counter_every == 0 else "gauge"
                    name = "bench_requests_total" if kind == "counter" else "bench_value"
                    part.append((key, orjson.dumps({"v": 1, "name": name, "kind": kind, "ts": self.clock(src) + t,
                                                    "value": float(v[s, t]),
                                                    "labels": {"host": f"host-{src}", "series": str(s)}})))
        self._markers(out)
        return out

    def _markers(self, out: dict[int, list[tuple[bytes, bytes]]]) -> None:
        for src in range(self.sources):
            end = self.clock(src) + self.seconds + 20.0
            out[src % PARTITIONS].append((f"host-{src}".encode(), orjson.dumps(
                {"v": 1, "name": MARKER, "ts": end, "value": 0.0, "labels": {"host": f"host-{src}"}})))

    def _far_future(self, out: dict[int, list[tuple[bytes, bytes]]]) -> None:
        if self.far_future is not None:
            src = self.far_future
            out[src % PARTITIONS].append((f"host-{src}".encode(), orjson.dumps(
                {"v": 1, "source": f"host-{src}", "labels": {"host": f"host-{src}"}, "series": [
                    self.block(src * self.series_per_source, [self.clock(src) + 365 * 86400.0], [1.0])]})))

    @property
    def markers(self) -> int:
        """Marker samples (one per source), beside the `samples`."""
        return self.sources

    @property
    def extra_samples(self) -> int:
        """Samples beside `samples`: the markers and the far-future one."""
        return self.sources + (self.far_future is not None)
