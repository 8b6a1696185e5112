"""Given this exposition text, expect these series, named and labelled as Prometheus stores them."""

from __future__ import annotations

import pytest

from watchkeeper.producers.exposition import ExpositionError, parse_exposition, parse_exposition_counted, target_labels
from watchkeeper.schemas.codec import decode, encode
from watchkeeper.schemas.samples import SeriesBlock

NOW = 1_700_000_000.0
TARGET = {"job": "app", "instance": "app.example:8000"}


def _series(blocks: list[SeriesBlock]) -> dict[tuple[str, tuple[tuple[str, str], ...]], tuple[str, list[float]]]:
    """name and the labels other than the target's -> (kind, values)."""
    return {(b.name, tuple(sorted((k, v) for k, v in b.labels.items() if k not in TARGET))): (b.kind, b.values)
            for b in blocks}


def test_counter_keeps_its_total_name_and_drops_created() -> None:
    text = """# HELP jobs_total Jobs done.
# TYPE jobs_total counter
jobs_total{queue="a"} 3
jobs_total{queue="b"} 4.5
# HELP jobs_created Jobs done.
# TYPE jobs_created gauge
jobs_created{queue="a"} 1.7e9
"""
    blocks = parse_exposition(text, NOW, TARGET)
    assert _series(blocks) == {
        ("jobs_total", (("queue", "a"),)): ("counter", [3.0]),
        ("jobs_total", (("queue", "b"),)): ("counter", [4.5]),
    }
    assert all(b.labels["job"] == "app" and b.labels["instance"] == "app.example:8000" for b in blocks)
    assert all(b.ts == [NOW] for b in blocks)


def test_counter_typed_without_total_keeps_its_exposed_name() -> None:
    """Prometheus stores `# TYPE foo counter` / `foo 1` as `foo`, though the client parser says `foo_total`."""
    blocks = parse_exposition("# TYPE requests counter\nrequests 7\n", NOW, {})
    assert [(b.name, b.kind, b.values) for b in blocks] == [("requests", "counter", [7.0])]


def test_counter_typed_without_total_but_sampled_with_it_is_a_counter() -> None:
    blocks = parse_exposition('# TYPE backups counter\nbackups_total{kind="full"} 42\n', NOW, {})
    assert [(b.name, b.kind, b.values) for b in blocks] == [("backups_total", "counter", [42.0])]


def test_gauge_and_untyped() -> None:
    text = "# TYPE temp gauge\ntemp{room=\"kitchen\"} 21.5\nloose_metric 3\n# TYPE u untyped\nu -1\n"
    assert _series(parse_exposition(text, NOW, TARGET)) == {
        ("temp", (("room", "kitchen"),)): ("gauge", [21.5]),
        ("loose_metric", ()): ("gauge", [3.0]),
        ("u", ()): ("gauge", [-1.0]),
    }


def test_histogram_buckets_sum_and_count_are_counters() -> None:
    text = """# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.1"} 1
latency_seconds_bucket{le="0.5"} 3
latency_seconds_bucket{le="+Inf"} 4
latency_seconds_sum 1.75
latency_seconds_count 4
"""
    assert _series(parse_exposition(text, NOW, TARGET)) == {
        ("latency_seconds_bucket", (("le", "0.1"),)): ("counter", [1.0]),
        ("latency_seconds_bucket", (("le", "0.5"),)): ("counter", [3.0]),
        ("latency_seconds_bucket", (("le", "+Inf"),)): ("counter", [4.0]),
        ("latency_seconds_sum", ()): ("counter", [1.75]),
        ("latency_seconds_count", ()): ("counter", [4.0]),
    }


def test_summary_quantiles_are_gauges_sum_and_count_counters() -> None:
    text = """# TYPE rpc_seconds summary
rpc_seconds{quantile="0.5"} 0.2
rpc_seconds{quantile="0.99"} 0.9
rpc_seconds_sum 12
rpc_seconds_count 40
"""
    assert _series(parse_exposition(text, NOW, TARGET)) == {
        ("rpc_seconds", (("quantile", "0.5"),)): ("gauge", [0.2]),
        ("rpc_seconds", (("quantile", "0.99"),)): ("gauge", [0.9]),
        ("rpc_seconds_sum", ()): ("counter", [12.0]),
        ("rpc_seconds_count", ()): ("counter", [40.0]),
    }


def test_timestamps_are_honoured_and_points_of_one_series_grouped() -> None:
    text = "# TYPE t gauge\nt 1 1600000000000\nt 2 1600000001500\nother 5\n"
    blocks = {b.name: b for b in parse_exposition(text, NOW, {})}
    assert (blocks["t"].ts, blocks["t"].values) == ([1_600_000_000.0, 1_600_000_001.5], [1.0, 2.0])
    assert blocks["other"].ts == [NOW]


@pytest.mark.parametrize(("exposed", "target", "expected"), [
    ({"job": "batch", "x": "1"}, {"job": "app"}, {"job": "app", "exported_job": "batch", "x": "1"}),
    ({"job": "batch", "exported_job": "old"}, {"job": "app"},
     {"job": "app", "exported_job": "old", "exported_exported_job": "batch"}),
    ({"instance": "a", "job": "b"}, TARGET,
     {**TARGET, "exported_instance": "a", "exported_job": "b"}),
    ({"job": "a", "exported_job": "b"}, {"job": "t", "exported_job": "u"},
     {"job": "t", "exported_job": "u", "exported_exported_job": "a", "exported_exported_exported_job": "b"}),
    ({"empty": "", "__private": "x", "keep": "y"}, {}, {"keep": "y"}),
])
def test_target_labels_win_and_exposed_ones_become_exported(
        exposed: dict[str, str], target: dict[str, str], expected: dict[str, str]) -> None:
    assert target_labels(exposed, target) == expected


def test_label_conflict_in_an_exposition() -> None:
    text = '# TYPE pushed gauge\npushed{job="batch",instance="elsewhere"} 1\n'
    [block] = parse_exposition(text, NOW, TARGET)
    assert block.labels == {**TARGET, "exported_job": "batch", "exported_instance": "elsewhere"}


def test_non_finite_values_are_skipped_and_counted_because_json_cannot_carry_them() -> None:
    text = "# TYPE g gauge\ng{a=\"1\"} NaN\ng{a=\"2\"} +Inf\ng{a=\"3\"} 1\n"
    parsed = parse_exposition_counted(text, NOW, {})
    assert [(b.labels, b.values) for b in parsed.blocks] == [({"a": "3"}, [1.0])]
    assert (parsed.samples, parsed.skipped) == (3, 2)
    for block in parsed.blocks:
        assert decode(encode(block), SeriesBlock) == block


@pytest.mark.parametrize(("text", "where"), [
    ('ok 1\nbad{a="1} 2\n', "line 2"),
    ("# TYPE a counter\na 1\na not_a_number\n", "line 3"),
    ("fine 1\n# TYPE x\n", "line 2"),
])
def test_malformed_text_raises_naming_the_line(text: str, where: str) -> None:
    with pytest.raises(ExpositionError, match=f"^{where}: ") as info:
        parse_exposition(text, NOW, {})
    assert isinstance(info.value, ValueError)


def test_openmetrics_with_eof() -> None:
    text = """# TYPE jobs counter
# HELP jobs Jobs done.
jobs_total{queue="a"} 3 1600000000.25
jobs_created{queue="a"} 1500000000 1600000000.25
# TYPE latency_seconds histogram
# UNIT latency_seconds seconds
latency_seconds_bucket{le="1.0"} 2
latency_seconds_bucket{le="+Inf"} 3
latency_seconds_sum 4.5
latency_seconds_count 3
latency_seconds_created 1500000000
# TYPE build info
build_info{version="1.2"} 1
# EOF
"""
    blocks = parse_exposition(text, NOW, TARGET, openmetrics=True)
    assert _series(blocks) == {
        ("jobs_total", (("queue", "a"),)): ("counter", [3.0]),
        ("latency_seconds_bucket", (("le", "1.0"),)): ("counter", [2.0]),
        ("latency_seconds_bucket", (("le", "+Inf"),)): ("counter", [3.0]),
        ("latency_seconds_sum", ()): ("counter", [4.5]),
        ("latency_seconds_count", ()): ("counter", [3.0]),
        ("build_info", (("version", "1.2"),)): ("gauge", [1.0]),
    }
    assert next(b for b in blocks if b.name == "jobs_total").ts == [1_600_000_000.25]


def test_openmetrics_without_eof_is_an_error() -> None:
    with pytest.raises(ExpositionError, match="Missing # EOF"):
        parse_exposition("# TYPE g gauge\ng 1\n", NOW, {}, openmetrics=True)
