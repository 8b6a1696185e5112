"""Public labelled real-world corpora for the NAB-style evaluation (none of them NAB or a copy of it).

- ``mscloud``: Microsoft's Cloud Monitoring Dataset (github.com/microsoft/cloud-monitoring-dataset,
  MIT): 67 production series in 8 domains (crash rates, purchase rates, ingress, API latency and RPS,
  MongoDB RPS, service unavailability), minutes to hours, anomalous POINTS labelled by domain experts;
  windows are built around them as NAB does (see `nab.windows_from_points`). Split in two halves by
  domain: ``mscloud-a`` (designs were chosen on it) and ``mscloud-b`` (only confirmed on it).
- ``skab``: the Skoltech Anomaly Benchmark (github.com/waico/SKAB, GPL-3.0): a water-circulation test
  bench, 34 experiments (valve closings, leaks, rotor imbalance, cavitation...) of ~1,100 one-second
  points, 8 sensors each, the anomalous INTERVAL labelled; every sensor is scored as its own series
  against the experiment's interval (so some series do not show the fault at all: hard for every
  detector alike). Only confirmed on it.

The data are not in this repository: `bench/anomaly/fetch_real.sh` clones both repositories at pinned
commits into ``bench/anomaly/data/real/`` (git-ignored), or point ``WK_REAL_DATA`` at a directory that
holds ``cloud-monitoring-dataset/`` and ``SKAB/``. None of their data is committed here; the unit tests of
the loaders write small files in the corpora's formats.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from nab import windows_from_points, windows_from_segments

HERE = Path(__file__).parent
DEFAULT_ROOT = HERE / "data" / "real"
MS_A_DOMAINS = ("application-crash-rate-1", "consumer-purchase-rate", "data-ingress-rate",
                "middle-tier-api-dependency-latency")  # the design half; the other half confirms
SKAB_SENSORS = ("Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature", "Thermocouple",
                "Voltage", "Volume Flow RateRMS")


@dataclass
class RealSeries:
    corpus: str
    name: str
    ts: np.ndarray  # epoch seconds
    values: np.ndarray
    windows: list[tuple[int, int]]  # [start, end) point indices


def data_root() -> Path:
    return Path(os.environ.get("WK_REAL_DATA", DEFAULT_ROOT))


def _epoch(stamps: list[str]) -> np.ndarray:
    clean = [s.strip().strip('"').replace(" ", "T").rstrip("Z") for s in stamps]
    return np.array(clean, dtype="datetime64[s]").astype(np.int64).astype(np.float64)


def load_mscloud(root: Path | None = None) -> list[RealSeries]:
    base = (root or data_root()) / "cloud-monitoring-dataset" / "data"
    out = []
    for path in sorted(base.glob("*/*.csv")):
        with path.open(newline="") as f:
            rows = [r for r in csv.reader(f) if r]
        rows = [r for r in rows[1:] if r[1].strip()]  # TimeStamp,Value,Label; a few rows have no value
        ts = _epoch([r[0] for r in rows])
        values = np.array([float(r[1]) for r in rows])
        labels = np.array([int(float(r[2])) for r in rows])
        order = np.argsort(ts, kind="stable")
        ts, values, labels = ts[order], values[order], labels[order]
        half = "mscloud-a" if path.parent.name in MS_A_DOMAINS else "mscloud-b"
        out.append(RealSeries(half, f"{path.parent.name}/{path.name}", ts, values, windows_from_points(labels)))
    return out


def load_skab(root: Path | None = None) -> list[RealSeries]:
    base = (root or data_root()) / "SKAB" / "data"
    out = []
    for path in sorted(base.glob("*/*.csv")):
        if path.parent.name == "anomaly-free":
            continue
        with path.open(newline="") as f:
            rows = list(csv.reader(f, delimiter=";"))
        head, rows = rows[0], [r for r in rows[1:] if r]
        ts = _epoch([r[0] for r in rows])
        labels = np.array([int(float(r[head.index("anomaly")])) for r in rows])
        windows = windows_from_segments(labels)
        for sensor in SKAB_SENSORS:
            values = np.array([float(r[head.index(sensor)]) for r in rows])
            out.append(RealSeries("skab", f"{path.parent.name}/{path.stem}:{sensor}", ts, values, windows))
    return out


def load_all(root: Path | None = None) -> list[RealSeries]:
    root = root or data_root()
    if not (root / "cloud-monitoring-dataset").is_dir() or not (root / "SKAB").is_dir():
        raise SystemExit(f"no real corpora under {root}: run bench/anomaly/fetch_real.sh first "
                         f"(or set WK_REAL_DATA)")
    return load_mscloud(root) + load_skab(root)
