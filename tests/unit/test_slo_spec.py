"""Mistakes in a Sloth spec are errors naming file, line and field."""

from __future__ import annotations

import pytest

from watchkeeper.core.errors import SourceError
from watchkeeper.core.slo import load_slo_spec

GOOD = """\
version: "prometheus/v1"
service: "api"
slos:
  - name: "availability"
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total[{{.window}}]))
    alerting:
      name: ApiAvailability
"""


def test_good_spec_loads() -> None:
    spec = load_slo_spec(GOOD, "api.yml")
    assert spec.service == "api"
    assert spec.slos[0].objective == 99.9


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "words"),
    [
        ("objective: 99.9", "objective: 120", 5, "slos.0.objective", "(0, 100]"),
        ("name: ApiAvailability", "nmae: ApiAvailability", 11, "slos.0.alerting.nmae", "Extra inputs"),
        ('"prometheus/v1"', '"sloth.slok.dev/v1"', 1, "version", "prometheus/v1"),
        ("[{{.window}}]))\n        total", "[5m]))\n        total", 8, "slos.0.sli.events.error_query", "{{.window}}"),
        ("sum(rate(http_requests_total[{{.window}}]))", "sum(rate(http_requests_total[{{.window}}])", 9,
         "slos.0.sli.events.total_query", "invalid PromQL"),
        ("{{.window}}]))\n        total", "{{.window}}{{.windw}}]))\n        total", 8, "slos.0.sli.events.error_query",
         "unknown template"),
        ("      name: ApiAvailability\n", "      page_alert: {}\n", 10, "slos.0.alerting.name", "required"),
    ],
)
def test_errors_name_file_line_and_field(old: str, new: str, line: int, field: str, words: str) -> None:
    text = GOOD.replace(old, new, 1)
    assert text != GOOD
    with pytest.raises(SourceError) as info:
        load_slo_spec(text, "api.yml")
    err = info.value
    assert (err.path, err.line, err.field) == ("api.yml", line, field)
    assert words in err.message


def test_raw_sli_and_plugin_refused() -> None:
    raw = GOOD.replace(
        '      events:\n        error_query: sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))\n'
        "        total_query: sum(rate(http_requests_total[{{.window}}]))\n",
        "      raw:\n        error_ratio_query: job:errors:ratio_rate{{.window}}\n",
    )
    assert load_slo_spec(raw, "raw.yml").slos[0].sli.raw is not None
    plugin = GOOD.replace("      events:", "      plugin:\n        id: sloth-common/availability\n      events:")
    with pytest.raises(SourceError, match="plugins are not supported"):
        load_slo_spec(plugin, "p.yml")
