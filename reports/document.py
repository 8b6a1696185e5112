"""A report as data (sections of text, tables and charts), rendered to Markdown or HTML in `render.py`.

Building the figures and laying them out are separate so tests can check every number without parsing text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class Chart:
    """A PNG figure; `name` becomes its file name next to a Markdown report."""

    name: str
    caption: str
    png: bytes


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)


@dataclass
class Document:
    title: str
    subtitle: str
    sections: list[Section] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def pct(x: float | None, digits: int = 3) -> str:
    """A ratio as a percentage, `n/a` when there was no data."""
    return "n/a" if x is None or math.isnan(x) else f"{x * 100:.{digits}f} %"


def num(x: float | None, digits: int = 2) -> str:
    if x is None or math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "never" if x > 0 else "-inf"
    return f"{x:,.{digits}f}"


def duration(seconds: float | None) -> str:
    """Seconds as the largest sensible unit: `3.2 d`, `5.0 h`, `12 min`; `never` for infinity."""
    if seconds is None or math.isnan(seconds):
        return "n/a"
    if math.isinf(seconds):
        return "never"
    if seconds <= 0:
        return "now"
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"


def when(t: datetime | None) -> str:
    return "n/a" if t is None else f"{t:%Y-%m-%d %H:%M} UTC"
