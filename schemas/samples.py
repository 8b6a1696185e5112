"""Raw samples as producers send them: one `Sample`, or (always, from our producers) a columnar `SampleBatch`."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from watchkeeper.schemas.label_names import LABEL_NAME, LABEL_NAME_SYNTAX, METRIC_NAME_SYNTAX

SampleKind = Literal["gauge", "counter"]
# For pydantic's `pattern` (its `$` is the end of the string); in Python, match with `METRIC_NAME.fullmatch`.
METRIC_NAME_PATTERN = f"^{METRIC_NAME_SYNTAX}$"
LABEL_NAME_PATTERN = LABEL_NAME_SYNTAX
_LABEL_NAME_OK = LABEL_NAME.fullmatch


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_labels(labels: dict[str, str]) -> dict[str, str]:
    for key in labels:
        if key.startswith("__") or not _LABEL_NAME_OK(key):
            raise ValueError(f"label name {key[:100]!r} is not a valid Prometheus label name "
                             f"({LABEL_NAME_PATTERN}, not starting with __)")
    return labels


class Sample(_Wire):
    """One point of one series. Accepted from third-party producers; ours send `SampleBatch`."""

    v: Literal[1] = 1
    name: str = Field(pattern=METRIC_NAME_PATTERN)
    labels: dict[str, str] = Field(default_factory=dict)
    ts: float
    value: float
    kind: SampleKind = "gauge"

    _labels = field_validator("labels")(_check_labels)

    @field_validator("ts")
    @classmethod
    def _finite_ts(cls, ts: float) -> float:
        if not math.isfinite(ts) or ts < 0:
            raise ValueError("ts must be a finite, non-negative epoch time in seconds")
        return ts


class SeriesBlock(_Wire):
    """The points of one series inside a batch: two equal-length columns that decode straight into numpy."""

    name: str = Field(pattern=METRIC_NAME_PATTERN)
    labels: dict[str, str] = Field(default_factory=dict)
    kind: SampleKind = "gauge"
    ts: list[float]
    values: list[float]

    _labels = field_validator("labels")(_check_labels)

    @model_validator(mode="after")
    def _equal_lengths(self) -> SeriesBlock:
        if len(self.ts) != len(self.values):
            raise ValueError(
                f"series {self.name!r}: ts has {len(self.ts)} points but values has {len(self.values)}"
            )
        return self


class SampleBatch(_Wire):
    """Many series from one source. `labels` apply to every series; a series' own labels win on conflict."""

    v: Literal[1] = 1
    source: str
    labels: dict[str, str] = Field(default_factory=dict)
    series: list[SeriesBlock]

    _labels = field_validator("labels")(_check_labels)

    def point_count(self) -> int:
        return sum(len(block.ts) for block in self.series)

    @classmethod
    def from_sample(cls, sample: Sample, source: str = "") -> SampleBatch:
        block = SeriesBlock(
            name=sample.name, labels=sample.labels, kind=sample.kind, ts=[sample.ts], values=[sample.value]
        )
        return cls(source=source, series=[block])
