"""Rule groups into units (groups reading what another records stay together) and units onto shards."""

from __future__ import annotations

from watchkeeper.core.rule_units import group_deps, retention_for, rule_units, selector_names, shard_of


def test_selector_names_collects_every_selector() -> None:
    expr = 'sum by (job) (rate(x_total{a="b"}[5m])) / on() group_left count({__name__="y", j=~"x"}) + absent(z)'
    assert selector_names(expr) == {"x_total", "y", "z"}


def test_a_selector_without_an_exact_name_may_read_anything() -> None:
    assert selector_names('count({job="api"})') is None
    assert selector_names('{__name__=~"http_.*"} > 0') is None


def test_groups_reading_recorded_series_share_a_unit() -> None:
    groups = [
        group_deps("record", ["sum by (job) (rate(http_requests_total[5m]))"], ["job:http:rate5m"]),
        group_deps("alert-on-record", ["job:http:rate5m > 10"], []),
        group_deps("independent", ["up == 0"], []),
        group_deps("chain", ["job:http:errors / job:http:rate5m"], ["job:http:ratio"]),
        group_deps("errors", ["sum by (job) (rate(http_errors_total[5m]))"], ["job:http:errors"]),
    ]
    units = {u.key: u.groups for u in rule_units(groups)}
    assert units == {
        "alert-on-record+chain+errors+record": ("record", "alert-on-record", "chain", "errors"),
        "independent": ("independent",),
    }


def test_a_group_with_a_nameless_selector_joins_every_recording_group() -> None:
    groups = [
        group_deps("rec", ["sum(up)"], ["total:up"]),
        group_deps("any", ['count({job="x"})'], []),
        group_deps("plain", ["up == 0"], []),
    ]
    assert sorted(u.key for u in rule_units(groups)) == ["any+rec", "plain"]


def test_shards_are_stable_and_in_range() -> None:
    assert shard_of("node-alerts", 8) == shard_of("node-alerts", 8)
    assert {shard_of(f"group-{i}", 8) for i in range(100)} == set(range(8))


def test_retention_covers_the_longest_range_and_lookback() -> None:
    assert retention_for([]) == 300.0 + 60.0
    assert retention_for([3600.0 + 300.0, 900.0]) == 3900.0 + 60.0
