"""Rules partitioned evaluation cannot give as one process would are refused by the worker (file, line, group,
rule named) and noted by `watchkeeper rules check`; everything else loads in both modes."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchkeeper.agents.rules_wiring import RulesConfigError, load_rules
from watchkeeper.commands.worker import rules_agent_settings
from watchkeeper.core.rules.loader import load_rules_text
from watchkeeper.core.rules.unit_plans import partition_problems, units_of
from watchkeeper.plumbing.config import load_config

PROBLEMS = """\
groups:
  - name: g
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: ByRegexName
        expr: '{__name__=~"job:.*"} < 1'
      - alert: QueriesRawSeries
        expr: job:up:sum < 1
        annotations:
          summary: '{{ with query "up == 0" }}{{ . | first | value }}{{ end }}'
      - alert: QueryBuiltAtRunTime
        expr: job:up:sum < 1
        annotations:
          summary: '{{ query (printf "x{a=%q}" $labels.job) }}'
"""

FINE = """\
groups:
  - name: g
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: QueriesItsOwnRecording
        expr: job:up:sum < 1
        annotations:
          summary: '{{ with query "job:up:sum" }}{{ . | first | value }}{{ end }} of {{ $value }}'
      - alert: RegexNameElsewhere
        expr: '{__name__=~"node_.*"} > 1'
  - name: other
    rules:
      - alert: NoRecordings
        expr: 'absent({job="x"})'
"""


def _problems(text: str) -> list[str]:
    groups = load_rules_text(text, "r.yml")
    return partition_problems(units_of(groups), groups)


def test_each_problem_is_named_with_file_line_group_and_rule() -> None:
    found = _problems(PROBLEMS)
    assert len(found) == 3
    assert found[0].startswith("r.yml:6: group 'g', rule 'ByRegexName': the selector {__name__=~\"job:.*\"}")
    assert found[1].startswith("r.yml:8: group 'g', rule 'QueriesRawSeries': a template queries 'up == 0', "
                               "which reads up")
    assert found[2].startswith("r.yml:12: group 'g', rule 'QueryBuiltAtRunTime': a template calls query with a "
                               "text built at run time")
    assert all(p.endswith("set rules.evaluation: full)") for p in found)


def test_rules_the_merge_stage_can_answer_are_not_problems() -> None:
    """A template query of the unit's own recording, a regex name that cannot match anything the unit records,
    and a selector without a name in a unit with no recordings and no alerts held by the merge stage."""
    assert _problems(FINE) == [
        # `absent({job="x"})` is an alert: its unit holds ALERTS, which a selector without a name may match
        "r.yml:14: group 'other', rule 'NoRecordings': the selector {job=\"x\"} has no exact metric name and may "
        "read the series this unit records or its ALERTS, which only the merge stage holds (partitioned "
        "evaluation cannot run it: set rules.evaluation: full)"]


@pytest.mark.parametrize(("mode", "refused"), [("partitioned", True), ("full", False)])
def test_the_worker_refuses_them_only_in_partitioned_mode(tmp_path: Path, mode: str, refused: bool) -> None:
    (tmp_path / "r.yml").write_text(PROBLEMS)
    (tmp_path / "watchkeeper.yaml").write_text(f"rules:\n  files: [r.yml]\n  evaluation: {mode}\n")
    cfg = load_config(str(tmp_path / "watchkeeper.yaml"))
    if refused:
        with pytest.raises(RulesConfigError, match=r"r\.yml:6: group 'g', rule 'ByRegexName'"):
            load_rules(rules_agent_settings(cfg))
    else:
        assert load_rules(rules_agent_settings(cfg)) is not None
