"""Inhibition (Alertmanager's inhibit.go): a firing source alert mutes target alerts that have the same
values for the rule's `equal` labels. An alert never inhibits itself."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from core.notify.config import InhibitRule
from core.notify.matchers import Matcher
from schemas.alerts import AlertEvent


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
