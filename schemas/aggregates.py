"""One closed event-time window of one series, with a mergeable DDSketch of its values."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99)


class SketchBins(BaseModel):
    """DDSketch bins (logarithmic mapping, `relative_accuracy` 1 %): sketches of adjacent windows merge by adding.

    Keys are the ``ddsketch`` package's LogarithmicMapping keys; `neg_*` hold the bins of -value for
    negative values and `zero` counts values whose magnitude is below the mapping's smallest bin.
    """

    model_config = ConfigDict(extra="forbid")

    relative_accuracy: float = 0.01
    keys: list[int] = Field(default_factory=list)
    counts: list[int] = Field(default_factory=list)
    neg_keys: list[int] = Field(default_factory=list)
    neg_counts: list[int] = Field(default_factory=list)
    zero: int = 0


class WindowAggregate(BaseModel):
    """The aggregate of window [start, end) of one series, emitted once when the watermark passes `end`."""

    model_config = ConfigDict(extra="forbid")

    v: Literal[1] = 1
    series_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    name: str
    labels: dict[str, str]
    kind: Literal["gauge", "counter"] = "gauge"
    start: float
    end: float
    count: int
    sum: float
    min: float
    max: float
    last: float
    increase: float = 0.0
    p50: float
    p90: float
    p95: float
    p99: float
    sketch: SketchBins
