"""The Prometheus text exposition format (0.0.4) and OpenMetrics, turned into our `SeriesBlock`s.

Shared by the scrape producer and the push API, so a series is named the same whichever way it arrives,
and named as Prometheus stores it: `<name>_total` for counters exposed that way, `_bucket` with `le`,
`_sum` and `_count` for histograms, quantiles with `quantile` for summaries. Prometheus' client parser
does the tokenising; this module only maps what it yields, which keeps it a pure function of the text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TextIO, cast

from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import text_fd_to_metric_families as _openmetrics_families
from prometheus_client.parser import text_fd_to_metric_families as _text_families
from prometheus_client.samples import Sample

from watchkeeper.schemas.label_names import is_label_name, is_metric_name
from watchkeeper.schemas.samples import SampleKind, SeriesBlock

_TYPE_LINE = re.compile(r"^\s*#\s+TYPE\s+(\S+)\s+counter\s*$", re.MULTILINE)
# Samples of these suffixes are cumulative counts in histograms and summaries (not in gauge histograms).
_COUNTER_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}
_CREATED_TYPES = {"counter", "histogram", "summary"}


class ExpositionError(ValueError):
    """Text that is not valid exposition; the message names the line and what is wrong with it."""


@dataclass
class ParsedExposition:
    """The series of one exposition, and how many samples were left out because our wire cannot carry them.

    `samples` counts every sample in the text, as Prometheus' `scrape_samples_scraped` does; `skipped`
    counts non-finite values (JSON has no NaN or Inf) and names or label names our schema rejects.
    """

    blocks: list[SeriesBlock] = field(default_factory=list)
    samples: int = 0
    skipped: int = 0
    invalid_names: int = 0  # of `skipped`: a metric or label name our schema rejects


def parse_exposition(text: str, now: float, extra_labels: dict[str, str], *,
                     openmetrics: bool = False) -> list[SeriesBlock]:
    """The series in `text`, each point at its own timestamp or at `now`, labelled with `extra_labels`.

    `extra_labels` are target labels with Prometheus' `honor_labels: false` meaning: on a clash they win,
    and the exposed value is kept as `exported_<name>`. Raises `ExpositionError` naming the bad line.
    """
    return parse_exposition_counted(text, now, extra_labels, openmetrics=openmetrics).blocks


def parse_exposition_counted(text: str, now: float, extra_labels: dict[str, str], *,
                             openmetrics: bool = False) -> ParsedExposition:
    """`parse_exposition`, also counting samples seen and skipped (the scrape producer reports them)."""
    lines = _CountingLines(text)
    try:
        # Both parsers only iterate their "file", so the counting iterator stands in for one.
        families = list(_openmetrics_families(lines) if openmetrics else _text_families(cast(TextIO, lines)))
    except ValueError as exc:
        raise lines.error(exc) from None
    typed_counters = set() if openmetrics else set(_TYPE_LINE.findall(text))
    created = _created_names(families)
    result = ParsedExposition()
    points: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[str, SampleKind, list[float], list[float]]] = {}
    for family in families:
        for sample in family.samples:
            result.samples += 1
            name = _stored_name(family, sample, typed_counters)
            if name in created or sample.native_histogram is not None:
                continue
            labels = target_labels(sample.labels, extra_labels)
            if labels is None or not is_metric_name(name):
                result.skipped += 1
                result.invalid_names += 1
                continue
            if not math.isfinite(sample.value):
                result.skipped += 1
                continue
            key = (name, tuple(sorted(labels.items())))
            if key not in points:
                points[key] = (name, _kind(family, name, typed_counters), [], [])
            _, _, ts, values = points[key]
            ts.append(float(sample.timestamp) if sample.timestamp is not None else now)
            values.append(float(sample.value))
    result.blocks = [SeriesBlock(name=name, labels=dict(labels), kind=kind, ts=ts, values=values)
                     for (_, labels), (name, kind, ts, values) in points.items()]
    return result


def target_labels(exposed: dict[str, str], target: dict[str, str]) -> dict[str, str] | None:
    """Exposed labels merged with target labels as Prometheus does with `honor_labels: false`.

    Empty values mean "no label" in Prometheus, so they are dropped; `__`-prefixed names are reserved
    and dropped too. None when an exposed label name is not one our schema accepts.
    """
    labels: dict[str, str] = {}
    for key, value in exposed.items():
        if key.startswith("__") or not value:
            continue
        if not is_label_name(key):
            return None
        labels[key] = value
    merged = {k: v for k, v in labels.items() if k not in target}
    for key, value in target.items():
        if value:
            merged[key] = value
    # Prometheus resolves clashes shortest name first, prefixing until the name is free in both sets
    # and not taken by an earlier clash.
    renamed: set[str] = set()
    for key in sorted((k for k in labels if k in target), key=len):
        name = "exported_" + key
        while name in labels or name in target or name in renamed:
            name = "exported_" + name
        renamed.add(name)
        merged[name] = labels[key]
    return merged


def _stored_name(family: Metric, sample: Sample, typed_counters: set[str]) -> str:
    """Undo the client parser's one renaming: text-format counters typed without `_total` keep their name.

    Prometheus stores `# TYPE foo counter` / `foo 1` as `foo`; the client parser yields `foo_total`.
    """
    name: str = sample.name
    if (family.type == "counter" and name == family.name + "_total" and family.name in typed_counters
            and name not in typed_counters):
        return family.name
    return name


def _created_names(families: list[Metric]) -> set[str]:
    """The `_created` series of counters, histograms and summaries: creation times, not measurements.

    OpenMetrics puts them inside their family; the 0.0.4 text format exposes them as separate gauges
    (`# TYPE jobs_created gauge`), so the family they belong to is found by name.
    """
    bases = set()
    for family in families:
        if family.type in _CREATED_TYPES:
            bases.add(family.name)
    return {base + "_created" for base in bases}


def _kind(family: Metric, name: str, typed_counters: set[str]) -> SampleKind:
    """Counter for counters and cumulative histogram/summary samples, else gauge.

    `# TYPE foo counter` followed by `foo_total 1` is common in the text format; the client parser calls
    `foo_total` untyped, but it is foo's counter sample, as in OpenMetrics.
    """
    if family.type == "counter":
        return "counter"
    if family.type == "unknown" and name.endswith("_total") and name.removesuffix("_total") in typed_counters:
        return "counter"
    suffixes = _COUNTER_SUFFIXES.get(family.type, ())
    return "counter" if any(name == family.name + suffix for suffix in suffixes) else "gauge"


class _CountingLines:
    """The text as the parser's line iterator, remembering which line it is on, so errors can name it."""

    def __init__(self, text: str) -> None:
        self._lines: Iterable[str] = text.splitlines(keepends=True)
        self.number = 0
        self.line = ""
        self.ended = False

    def __iter__(self) -> Iterator[str]:
        for line in self._lines:
            self.number += 1
            self.line = line.rstrip("\n")
            yield line
        self.ended = True

    def error(self, exc: ValueError) -> ExpositionError:
        reason = " ".join(str(arg) for arg in exc.args) or "malformed line"
        if self.number == 0:
            return ExpositionError(f"{reason} (the exposition is empty)")
        if self.ended:
            return ExpositionError(f"at the end, after line {self.number}: {reason}")
        shown = "" if self.line in reason else f": {self.line[:200]!r}"
        return ExpositionError(f"line {self.number}: {reason}{shown}")
