"""Sloth's own example, unchanged, generates exactly the rules Sloth generated for it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from watchkeeper.core.slo import GeneratorInfo, generate_rule_groups, load_slo_spec_file, rules_yaml
from watchkeeper.core.slo.go_format import go_float, go_float_fixed, parse_prom_duration, prom_duration
from watchkeeper.core.slo.windows import DAY, google_windows

FIXTURES = Path(__file__).parent.parent / "fixtures" / "sloth"


@pytest.mark.parametrize("example", ["home-wifi", "raw-home-wifi"])
def test_sloth_example_matches_sloth_output_rule_for_rule(example: str) -> None:
    spec = load_slo_spec_file(str(FIXTURES / f"{example}.yml"))
    # Sloth's examples script runs `sloth generate --extra-labels cmd=examplesgen.sh` at version `dev`.
    got = generate_rule_groups(spec, GeneratorInfo(version="dev"), extra_labels={"cmd": "examplesgen.sh"})
    expected = yaml.safe_load((FIXTURES / f"{example}.sloth-output.yml").read_text())["groups"]
    assert [g["name"] for g in got] == [g["name"] for g in expected]
    for got_group, exp_group in zip(got, expected, strict=True):
        assert len(got_group["rules"]) == len(exp_group["rules"])
        for got_rule, exp_rule in zip(got_group["rules"], exp_group["rules"], strict=True):
            assert got_rule == exp_rule


def test_written_file_parses_back_to_the_same_groups() -> None:
    spec = load_slo_spec_file(str(FIXTURES / "home-wifi.yml"))
    groups = generate_rule_groups(spec)
    assert yaml.safe_load(rules_yaml(groups, "x.yml"))["groups"] == groups


def test_burn_rate_factors_are_the_workbooks() -> None:
    w = google_windows(30 * DAY)
    factors = [b.factor(30 * DAY) for b in (w.page_quick, w.page_slow, w.ticket_quick, w.ticket_slow)]
    assert factors == [14.4, 6, 3, 1]
    assert [prom_duration(x) for x in w.all_windows()] == ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]


def test_28d_period_uses_weeks_like_prometheus() -> None:
    spec = load_slo_spec_file(str(FIXTURES / "home-wifi.yml"))
    groups = generate_rule_groups(spec, period=28 * DAY)
    assert groups[0]["rules"][-1]["record"] == "slo:sli_error:ratio_rate4w"
    assert groups[1]["rules"][2]["expr"] == "vector(28)"
    page = groups[2]["rules"][0]["expr"]
    assert "(13.44 * 0.05)" in page


def test_disabled_alerts_give_no_alert_group(tmp_path: Path) -> None:
    text = (FIXTURES / "home-wifi.yml").read_text().replace(
        "      page_alert:\n        labels:\n          severity: home\n      ticket_alert:\n        labels:\n"
        "          severity: warning\n",
        "      page_alert:\n        disable: true\n      ticket_alert:\n        disable: true\n",
    )
    path = tmp_path / "s.yml"
    path.write_text(text)
    groups = generate_rule_groups(load_slo_spec_file(str(path)))
    kinds = [g["name"].split("-home-wifi")[0] for g in groups]
    assert kinds == ["sloth-slo-sli-recordings", "sloth-slo-meta-recordings"] * 2


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.999, "0.999"), (99.9 / 100, "0.9990000000000001"), ((100 - 99.999) / 100, "1.0000000000047748e-05"),
     (1e6, "1e+06"), (14.4, "14.4"), (30.0, "30"), (123456.0, "123456"), (-0.5, "-0.5")],
)
def test_floats_print_like_go(value: float, text: str) -> None:
    assert go_float(value) == text


def test_objective_label_and_durations() -> None:
    assert go_float_fixed(99.9) == "99.9"
    assert go_float_fixed(95.0) == "95"
    assert prom_duration(7 * DAY) == "1w"
    assert prom_duration(90 * 60) == "1h30m"
    assert parse_prom_duration("1h30m") == 5400
    with pytest.raises(ValueError):
        parse_prom_duration("30 days")
