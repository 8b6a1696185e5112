"""`watchkeeper detect` as users run it: a subprocess reading CSV on stdin, writing scores on stdout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from watchkeeper.core.detectors import make_detector

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def detect(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "watchkeeper", "detect", *args], input=stdin, text=True,
                          capture_output=True, env=ENV, cwd=ROOT, timeout=60)


def csv_rows(n: int = 800) -> tuple[np.ndarray, np.ndarray, str]:
    rng = np.random.default_rng(7)
    ts = 1_700_000_000 + 300 * np.arange(n)
    x = np.round(rng.normal(10, 1, n), 4)
    x[600] = 40
    return ts.astype(float), x, "".join(f"{t},{v}\n" for t, v in zip(ts, x, strict=True))


def test_one_row_per_input_row_with_the_library_scores() -> None:
    ts, x, body = csv_rows()
    res = detect("--detector", "robust", "--param", "window=100", stdin="timestamp,value\n" + body)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "timestamp,value,anomaly_score"
    assert len(lines) == len(ts) + 1
    rows = [line.split(",") for line in lines[1:]]
    assert [r[0] for r in rows] == [str(int(t)) for t in ts]  # echoed as given, in order
    scores = np.array([float(r[2]) for r in rows])
    expected = make_detector("robust", window=100).score_batch(ts, x)
    np.testing.assert_allclose(scores, expected, atol=1e-9)
    assert scores[600] > 0.999


def test_bad_rows_are_echoed_with_an_empty_score_and_named_on_stderr() -> None:
    body = "1700000000,1\n1700000300,abc\n\n1700000600,2,3\nyesterday,4\n1700000900,nan\n2023-11-14T22:35:00Z,5\n"
    res = detect(stdin=body)
    assert res.returncode == 0
    assert res.stdout.splitlines() == ["1700000000,1,0", "1700000300,abc,", ",,", "1700000600,\"2,3\",",
                                       "yesterday,4,", "1700000900,nan,", "2023-11-14T22:35:00Z,5,0"]
    assert "line 2: value 'abc' is not a number" in res.stderr
    assert "line 3: blank line" in res.stderr
    assert "line 4: expected 2 fields" in res.stderr
    assert "line 5: timestamp 'yesterday' is neither epoch seconds nor ISO 8601" in res.stderr
    assert "line 6: value 'nan' is not finite" in res.stderr
    assert "5 bad row(s)" in res.stderr
    assert len(res.stdout.splitlines()) == 7


def test_strict_stops_at_the_first_bad_row() -> None:
    res = detect("--strict", stdin="1700000000,1\n1700000300,abc\n1700000600,2\n")
    assert res.returncode == 1
    assert res.stdout.splitlines() == ["1700000000,1,0"]
    assert "line 2" in res.stderr


def test_unknown_param_is_a_clear_error() -> None:
    res = detect("--detector", "robust", "--param", "windw=3", stdin="")
    assert res.returncode == 1
    assert "detector 'robust' has no parameter 'windw'" in res.stderr


def test_help_lists_every_detector_its_params_and_an_example() -> None:
    res = subprocess.run([sys.executable, "-m", "watchkeeper", "detect", "--help"], capture_output=True,
                         text=True, env=ENV, cwd=ROOT, timeout=60)
    for name in ("ensemble", "robust", "seasonal", "levelshift", "zscore", "window=288", "example:"):
        assert name in res.stdout


def test_rows_come_out_while_the_pipe_is_still_open() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "watchkeeper", "detect", "--detector", "ensemble"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=ENV, cwd=ROOT)
    assert proc.stdin and proc.stdout
    try:
        for i in range(3):
            proc.stdin.write(f"{1_700_000_000 + 60 * i},{i}\n".encode())
            proc.stdin.flush()
            line = proc.stdout.readline().decode()  # would hang (test timeout) if output waited for EOF
            assert line.startswith(f"{1_700_000_000 + 60 * i},{i},")
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    assert proc.returncode == 0


def test_scores_do_not_depend_on_how_stdin_was_chunked() -> None:
    *_, body = csv_rows()
    whole = detect("--detector", "ensemble", "--param", "window=64", stdin=body).stdout
    proc = subprocess.Popen([sys.executable, "-m", "watchkeeper", "detect", "--detector", "ensemble", "--param",
                             "window=64"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=ENV, cwd=ROOT)
    assert proc.stdin and proc.stdout
    lines = body.splitlines(keepends=True)
    out = []
    for a, b in ((0, 5), (5, 300), (300, 301), (301, 800)):
        proc.stdin.write("".join(lines[a:b]).encode())
        proc.stdin.flush()
        out += [proc.stdout.readline().decode() for _ in range(b - a)]
    proc.stdin.close()
    proc.wait(timeout=30)
    got = np.array([float(line.split(",")[2]) for line in out])
    want = np.array([float(line.split(",")[2]) for line in whole.splitlines()])
    np.testing.assert_allclose(got, want, atol=1e-9)


def test_plain_rows_and_rows_needing_the_careful_parser_score_the_same() -> None:
    ts, _, body = csv_rows()
    plain = detect("--detector", "ensemble", stdin=body).stdout.splitlines()  # numpy fast path
    spaced = detect("--detector", "ensemble", stdin=body.replace(",", ", ")).stdout.splitlines()  # row by row
    assert [r.split(",")[2] for r in plain] == [r.split(",")[2] for r in spaced]
    assert spaced[0] == f"{int(ts[0])},{body.splitlines()[0].split(',')[1]},0"


def test_the_default_detector_is_the_ensemble_and_gives_one_detection_for_a_spike() -> None:
    """`watchkeeper detect` with no --detector, as documented: the `ensemble` detector's scores."""
    ts, x, body = csv_rows()
    res = detect(stdin="timestamp,value\n" + body)
    assert res.returncode == 0, res.stderr
    scores = np.array([float(line.split(",")[2]) for line in res.stdout.splitlines()[1:]])
    np.testing.assert_allclose(scores, make_detector("ensemble").score_batch(ts, x), atol=1e-9)
    assert scores[600] == scores.max() > 0.85  # the spike (30 sigma)
    assert scores[601] == 0.0  # held off: back to normal is not a second event


def test_default_detector_scores_do_not_depend_on_how_stdin_was_chunked() -> None:
    *_, body = csv_rows()
    whole = detect(stdin=body).stdout
    proc = subprocess.Popen([sys.executable, "-m", "watchkeeper", "detect"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=ENV, cwd=ROOT)
    assert proc.stdin and proc.stdout
    lines = body.splitlines(keepends=True)
    out = []
    for a, b in ((0, 1), (1, 21), (21, 22), (22, 413), (413, 800)):
        proc.stdin.write("".join(lines[a:b]).encode())
        proc.stdin.flush()
        out += [proc.stdout.readline().decode() for _ in range(b - a)]
    proc.stdin.close()
    proc.wait(timeout=30)
    assert out == whole.splitlines(keepends=True)
