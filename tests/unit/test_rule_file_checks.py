"""The checks Prometheus rule files and anomaly rule files share (`core.rules.rule_file_checks`), and the one
metric-name rule (`schemas.label_names`): the same file mistake gets the same answer from both loaders."""

from __future__ import annotations

import pytest

from watchkeeper.core.anomaly_rules import load_anomaly_text
from watchkeeper.core.errors import SourceError
from watchkeeper.core.rules.loader import load_rules_text
from watchkeeper.schemas.label_names import is_label_name, is_metric_name

RULES = "groups:\n  - name: g\n    rules:\n      - {rule}\n"
ANOMALY = "anomaly:\n  - name: g\n    rules:\n      - {rule}\n"
ANOMALY_RULE = "{{alert: {alert}, selector: up, threshold: 0.9{extra}}}"


@pytest.mark.parametrize(("name", "ok"), [("up", True), ("job:rate5m", True), ("_x", True), ("up\n", False),
                                          ("1up", False), ("up-time", False), ("é", False), ("", False)])
def test_metric_names(name: str, ok: bool) -> None:
    assert is_metric_name(name) is ok
    assert is_label_name(name) is (ok and ":" not in name)


def test_a_record_name_with_a_trailing_newline_is_refused() -> None:
    # `^...$` with re.match took it (its `$` matches before a final newline); Prometheus refuses it.
    with pytest.raises(SourceError, match=r"rule 'job:up\\n'.*is not a valid metric name"):
        load_rules_text(RULES.format(rule='{record: "job:up\\n", expr: up}'))


def test_an_anomaly_alert_name_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(SourceError, match="is not a valid alert name"):
        load_anomaly_text(ANOMALY.format(rule=ANOMALY_RULE.format(alert='"Up\\n"', extra="")))


@pytest.mark.parametrize(("extra", "message"), [
    (", labels: {1bad: x}", "group 'g', rule 'A': '1bad' is not a valid label name"),
    (", annotations: {summary: '{{ .Foo '}", "group 'g', rule 'A': template: "),
    (", for: 5x", "group 'g', rule 'A': "),
    (", labels: {ok: true}", None),
])
def test_both_loaders_check_labels_annotations_and_durations_alike(extra: str, message: str | None) -> None:
    rule_text = RULES.format(rule="{alert: A, expr: up" + extra + "}")
    anomaly_text = ANOMALY.format(rule=ANOMALY_RULE.format(alert="A", extra=extra))
    if message is None:
        assert load_rules_text(rule_text)[0].rules[0].labels == {"ok": "true"}
        assert load_anomaly_text(anomaly_text)[0].rules[0].labels == {"ok": "true"}
        return
    for load, text in ((load_rules_text, rule_text), (load_anomaly_text, anomaly_text)):
        with pytest.raises(SourceError) as exc:
            load(text)
        assert exc.value.message.startswith(message), exc.value.message
        assert exc.value.line == 4


def test_reserved_label_names_differ_as_before() -> None:
    # A rule's labels may not set __name__; an anomaly rule's may set no name starting with __.
    with pytest.raises(SourceError, match="'__name__' is not a valid label name"):
        load_rules_text(RULES.format(rule="{alert: A, expr: up, labels: {__name__: x}}"))
    assert load_rules_text(RULES.format(rule="{alert: A, expr: up, labels: {__x: y}}"))[0].rules[0].labels == {
        "__x": "y"}
    with pytest.raises(SourceError, match="'__x' is not a valid label name"):
        load_anomaly_text(ANOMALY.format(rule=ANOMALY_RULE.format(alert="A", extra=", labels: {__x: y}")))


@pytest.mark.parametrize("load", [load_rules_text, load_anomaly_text])
def test_an_empty_file_has_no_groups_and_a_list_is_refused(load: object) -> None:
    assert load("") == []  # type: ignore[operator]
    with pytest.raises(SourceError, match=r"expected an? (anomaly )?rule file"):
        load("- a\n")  # type: ignore[operator]
