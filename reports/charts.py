"""PNG charts with matplotlib (headless Agg backend), one style for every report."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"]


def _figure(title: str, ylabel: str) -> tuple[Figure, plt.Axes]:
    fig, ax = plt.subplots(figsize=(9, 4.0), dpi=100)
    ax.set_title(title, loc="left", fontsize=11, fontweight="bold")
    ax.set_ylabel(ylabel)
    ax.grid(True, color="#e5e7eb", linewidth=0.8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    return fig, ax


def _legend_below(ax: plt.Axes) -> None:
    """Under the plot, so it never hides a line."""
    n = len(ax.get_legend_handles_labels()[1])
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=min(n, 3), fontsize=8, frameon=False)


def _x(xs: Sequence[datetime]) -> Any:
    """Datetimes as matplotlib date numbers (the axis formats them back as dates)."""
    return mdates.date2num(list(xs))


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    # No software stamp: the same figure gives the same PNG bytes.
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def line_chart(
    title: str,
    ylabel: str,
    series: Sequence[tuple[str, Sequence[datetime], Sequence[float]]],
    hlines: Sequence[tuple[str, float]] = (),
    vlines: Sequence[tuple[str, datetime]] = (),
    dashed: Sequence[str] = (),
) -> bytes:
    """Lines over time, with labelled horizontal thresholds and vertical markers."""
    fig, ax = _figure(title, ylabel)
    for i, (label, xs, ys) in enumerate(series):
        ax.plot(_x(xs), list(ys), label=label, color=PALETTE[i % len(PALETTE)], linewidth=1.6,
                linestyle="--" if label in dashed else "-")
    for i, (label, y) in enumerate(hlines):
        ax.axhline(y, color=("#991b1b", "#d97706", "#6b7280")[i % 3], linestyle=":", linewidth=1.4, label=label)
    for label, x in vlines:
        ax.axvline(float(_x([x])[0]), color="#6b7280", linestyle="--", linewidth=1, label=label)
    if series or hlines:
        _legend_below(ax)
    return _png(fig)


def forecast_chart(
    title: str,
    ylabel: str,
    xs: Sequence[datetime],
    ys: Sequence[float],
    fit_x: Sequence[datetime],
    fit_y: Sequence[float],
    band_low: Sequence[float],
    band_high: Sequence[float],
    threshold: float,
) -> bytes:
    """Observed values, the fitted trend extended forward, its uncertainty band and the threshold."""
    fig, ax = _figure(title, ylabel)
    ax.plot(_x(xs), list(ys), color=PALETTE[0], linewidth=1.4, label="observed (hourly mean)")
    ax.plot(_x(fit_x), list(fit_y), color=PALETTE[3], linewidth=1.6, linestyle="--", label="linear trend")
    ax.fill_between(_x(fit_x), list(band_low), list(band_high), color=PALETTE[3], alpha=0.18, label="95 % band")
    ax.axhline(threshold, color="#991b1b", linestyle=":", linewidth=1.2, label=f"threshold {threshold:g}")
    _legend_below(ax)
    return _png(fig)


def spans_chart(
    title: str,
    ylabel: str,
    series: Sequence[tuple[str, Sequence[datetime], Sequence[float]]],
    threshold: tuple[str, float] | None,
    firing: Sequence[tuple[datetime, datetime]],
    pending: Sequence[tuple[datetime, datetime]] = (),
) -> bytes:
    """Lines over time with a threshold and shaded spans: pending (light) and firing (red) alert time."""
    fig, ax = _figure(title, ylabel)
    for i, (label, xs, ys) in enumerate(series):
        ax.plot(_x(xs), list(ys), label=label, color=PALETTE[i % len(PALETTE)], linewidth=1.2)
    if threshold is not None:
        ax.axhline(threshold[1], color="#991b1b", linestyle=":", linewidth=1.4, label=threshold[0])
    for spans, color, label in ((pending, "#fbbf24", "pending"), (firing, "#dc2626", "firing")):
        for j, (a, b) in enumerate(spans):
            x0, x1 = _x([a, b])
            ax.axvspan(float(x0), float(x1), color=color, alpha=0.18, linewidth=0, label=label if j == 0 else None)
    if series or threshold or firing or pending:
        _legend_below(ax)
    return _png(fig)
