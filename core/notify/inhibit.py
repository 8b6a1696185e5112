"""Inhibition (Alertmanager's inhibit.go): a firing source alert mutes target alerts that have the same
values for the rule's `equal` labels. An alert never inhibits itself."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from watchkeeper.core.notify.config import InhibitRule
from watchkeeper.core.notify.matchers import Matcher
from watchkeeper.schemas.alerts import AlertEvent


def inhibited(rules: list[InhibitRule], target: AlertEvent, firing: Iterable[AlertEvent]) -> bool:
    for rule in rules:
        if not _all(rule.target, target.labels):
            continue
        for s in firing:
            if s.state != "firing" or s.fingerprint == target.fingerprint or not _all(rule.source, s.labels):
                continue
            if all(s.labels.get(k, "") == target.labels.get(k, "") for k in rule.equal):
                return True
    return False


def _all(matchers: list[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def inhibiting_rules(rules: list[InhibitRule], target: Mapping[str, str], source: Mapping[str, str]) -> list[int]:
    """The indexes of the rules under which a firing alert labelled `source` mutes one labelled `target`
    (Alertmanager's Inhibitor.Mutes, including its two-sided rule: when the target also matches the
    source matchers, a source that also matches the target matchers does not count)."""
    out = []
    for i, rule in enumerate(rules):
        if not _all(rule.target, target) or not _all(rule.source, source):
            continue
        if _all(rule.source, target) and _all(rule.target, source):
            continue
        if all(source.get(k, "") == target.get(k, "") for k in rule.equal):
            out.append(i)
    return out
