"""bench/anomaly's NAB-style scorer (nab.py) against hand-computed cases, and the real-corpus loaders on
the small checked-in sample (CI has no network, so the full corpora are not read here)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[2] / "bench" / "anomaly"))
from evaluate_real import reference_zscore
from nab import PROFILES, SeriesScorer, best, windows_from_points, windows_from_segments
from real_corpora import load_mscloud, load_skab

from watchkeeper.core.detectors import make_detector

STANDARD, LOW_FP, LOW_FN = PROFILES


def sig(y: float) -> float:
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def _one(scores: np.ndarray, windows: list[tuple[int, int]], threshold: float, profile=STANDARD) -> float:
    return float(SeriesScorer(scores, windows).counts(np.array([threshold])).normalised(profile)[0])


def test_perfect_never_early_late_and_false_positive() -> None:
    w = [(50, 60)]
    s = np.zeros(100)
    assert _one(s, w, 0.5) == 0.0  # never fires: 0
    s[50] = 1
    assert abs(_one(s, w, 0.5) - 100.0) < 1e-9  # the window's first point: perfect
    s[50], s[55] = 0, 1
    half = sig(-0.5)
    assert abs(_one(s, w, 0.5) - 100 * (half + 1) / (sig(-1) + 1)) < 1e-9
    s[20] = 1  # a false positive before any window costs A_FP in full
    assert abs(_one(s, w, 0.5) - 100 * (half - 0.11 + 1) / (sig(-1) + 1)) < 1e-9
    assert abs(_one(s, w, 0.5, LOW_FP) - 100 * (half - 0.22 + 1) / (sig(-1) + 1)) < 1e-9
    s[10] = 1  # inside the 15 % probation: not counted
    assert abs(_one(s, w, 0.5) - 100 * (half - 0.11 + 1) / (sig(-1) + 1)) < 1e-9


def test_false_positive_after_a_window_costs_less_and_later_points_in_a_window_nothing() -> None:
    w = [(50, 60)]
    s = np.zeros(200)
    s[50:60] = 1  # a run inside the window counts once
    assert abs(_one(s, w, 0.5) - 100.0) < 1e-9
    s[62] = 1  # just after the window: weight sigma((62 - 60 + 1) / 10), about -0.6
    expected = sig(-1) + 0.11 * sig(0.3)
    assert abs(_one(s, w, 0.5) - 100 * (expected + 1) / (sig(-1) + 1)) < 1e-9
    missed = np.zeros(200)
    assert _one(missed, w, 0.5, LOW_FN) == 0.0


def test_windows_from_labels() -> None:
    labels = np.zeros(1000, dtype=int)
    labels[[300, 700]] = 1
    assert windows_from_points(labels) == [(275, 325), (675, 725)]  # 10 % of 1000 / 2 events, centred
    labels[301:304] = 1  # a run is one event
    assert len(windows_from_points(labels)) == 2
    assert windows_from_segments(labels) == [(300, 304), (700, 701)]


def test_one_global_threshold_is_the_best_one() -> None:
    a, b = np.zeros(100), np.zeros(100)
    a[50], a[30] = 0.9, 0.5  # a true detection and a weaker false one
    b[70], b[40] = 0.8, 0.6
    scorers = [SeriesScorer(a, [(50, 60)]), SeriesScorer(b, [(70, 80)])]
    thr, counts = best(scorers, [a, b], STANDARD)
    assert 0.6 < thr <= 0.8 and counts.tp[0] == 2 and counts.fp_points[0] == 0
    assert abs(float(counts.normalised(STANDARD)[0]) - 100.0) < 1e-9


def _mscloud_file(path: Path, n: int, spikes: list[int], seed: int) -> None:
    """A series in the Cloud Monitoring Dataset's format (TimeStamp,Value,Label), hourly, labelled spikes."""
    rng = np.random.default_rng(seed)
    values = 100 + 10 * np.sin(np.arange(n) * 2 * np.pi / 24) + rng.normal(0, 2, n)
    values[spikes] += 80
    start = np.datetime64("2018-07-03T14:00:00")
    rows = [f"{str(start + np.timedelta64(i, 'h')).replace('T', ' ')},{values[i]:.3f},{int(i in spikes)}"
            for i in range(n)]
    rows[5] = rows[5].split(",")[0] + ",,0"  # a few rows of the real files have no value
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(["TimeStamp,Value,Label", *rows]) + "\n")


def test_mscloud_loader_and_the_default_detector_on_labelled_spikes(tmp_path: Path) -> None:
    base = tmp_path / "cloud-monitoring-dataset" / "data"
    _mscloud_file(base / "application-crash-rate-1" / "app1-01.csv", 360, [200], 1)
    _mscloud_file(base / "middle-tier-api-dependency-latency" / "outbound-05.csv", 720, [300, 600], 2)
    series = load_mscloud(tmp_path)
    assert [s.name for s in series] == ["application-crash-rate-1/app1-01.csv",
                                        "middle-tier-api-dependency-latency/outbound-05.csv"]
    assert [len(s.values) for s in series] == [359, 719]  # the row without a value is left out
    assert sum(len(s.windows) for s in series) == 3
    assert all(0 <= a < b <= len(s.values) for s in series for a, b in s.windows)
    for make in (lambda s: make_detector("event").score_batch(s.ts, s.values),
                 lambda s: reference_zscore(s.values)):
        scores = [make(s) for s in series]
        _, c = best([SeriesScorer(sc, s.windows) for sc, s in zip(scores, series, strict=True)], scores, STANDARD)
        assert c.normalised(STANDARD)[0] > 0.0 and c.windows == 3


def test_skab_loader_reads_every_sensor_against_the_labelled_interval(tmp_path: Path) -> None:
    d = tmp_path / "SKAB" / "data" / "valve1"
    d.mkdir(parents=True)
    head = ("datetime;Accelerometer1RMS;Accelerometer2RMS;Current;Pressure;Temperature;Thermocouple;Voltage;"
            "Volume Flow RateRMS;anomaly;changepoint")
    rows = [f"2020-03-09 10:14:{i:02d};{i};1;2;3;4;5;6;7;{int(20 <= i < 30)}.0;0.0" for i in range(40)]
    (d / "0.csv").write_text("\n".join([head, *rows]) + "\n")
    series = load_skab(tmp_path)
    assert len(series) == 8 and all(s.windows == [(20, 30)] for s in series)
    assert series[0].values.tolist() == list(range(40)) and series[0].ts[1] - series[0].ts[0] == 1.0
