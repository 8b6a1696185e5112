"""Verified remediation's pure parts on a fake clock: when a verification decides, the cooldown, the outcome
texts, and `verify:` config errors with file, line and field; plus the real remediation driver with a fake
clock against real commands (a hook that fails, a check that passes)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import numpy as np
import pytest

from tests import report_dataset as rd
from watchkeeper.core.errors import SourceError
from watchkeeper.core.notify.config import load_notify_config
from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.receiver_configs import CommandConfig, VerifyConfig
from watchkeeper.core.notify.remediation import FAILED, RECOVERED, Verification, due_for_run, outcome_alerts
from watchkeeper.reports.clickhouse_reader import get_reader
from watchkeeper.schemas.alerts import AlertEvent
from watchkeeper.sinks.channels.command import CommandChannel
from watchkeeper.sinks.escalation_store import EscalationStore
from watchkeeper.sinks.remediation import clickhouse_samples, promql_health, remediate


def test_verification_probes_every_interval_until_healthy_or_within_passes() -> None:
    v = Verification(started=100, within=30, interval=10)
    timeline = []
    for healthy in (False, False, True):
        t = v.next_probe_at()
        timeline.append((t, v.observe(healthy, t)))
    assert timeline == [(100, ""), (110, ""), (120, "recovered")]
    v = Verification(started=100, within=25, interval=10)
    outcomes = []
    while not v.outcome:
        t = v.next_probe_at()
        outcomes.append((t, v.observe(False, t)))
    assert outcomes == [(100, ""), (110, ""), (120, ""), (130, "failed")]  # the probe past `within` decides
    assert v.observe(True, 200) == "failed"  # decided once


def test_cooldown_allows_one_run_per_alert_per_cooldown() -> None:
    assert due_for_run({"a": None, "b": 100.0, "c": 1000.0}, 1800, 1900) == ["a", "b"]
    assert due_for_run({"b": 100.0}, 1800, 1899) == []


def test_outcome_alerts_keep_labels_and_say_what_happened() -> None:
    a = AlertEvent(fingerprint="f", rule="WebDown", state="firing", labels={"alertname": "WebDown"},
                   annotations={"summary": "web is down"}, starts_at=0, event_time=0)
    (ok,) = outcome_alerts([a], "recovered", "")
    assert ok.labels == a.labels and ok.fingerprint == "f"
    assert ok.annotations == {"summary": f"{RECOVERED} (web is down)", "remediation": RECOVERED}
    (bad,) = outcome_alerts([a], "failed", "exit status 1")
    assert bad.annotations["remediation"] == FAILED and bad.annotations["remediation_detail"] == "exit status 1"


BASE = """
route: {receiver: web}
receivers:
  - name: web
    command_configs:
      - command: [/bin/true]
        verify: VERIFY
"""


@pytest.mark.parametrize(("verify", "field", "error"), [
    ("{within: 1m}", "verify", "exactly one of `http`"),
    ('{http: "http://127.0.0.1:1/", command: [/bin/true]}', "verify", "exactly one of `http`"),
    ('{http: "ftp://x"}', "verify", "must be an http:// or https:// URL"),
    ('{http: "http://127.0.0.1:1/", within: soon}', "verify.within", "not a Prometheus duration"),
    ('{http: "http://127.0.0.1:1/", report_to: [nobody]}', "verify.report_to.0", "receiver 'nobody'"),
])
def test_verify_config_errors_name_the_field(verify: str, field: str, error: str) -> None:
    with pytest.raises(SourceError) as info:
        load_notify_config(BASE.replace("VERIFY", verify))
    assert info.value.field is not None and field in info.value.field and error in str(info.value)


def _note() -> Notification:
    a = AlertEvent(fingerprint="fp1", rule="WebDown", state="firing", labels={"alertname": "WebDown"},
                   starts_at=0, event_time=0)
    return Notification("web", "command[0]", "{}:{}", {}, [a], 0.0)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    async def sleep(self, s: float) -> None:
        self.t += s


def _hook(tmp: Path, command: list[str], check: list[str]) -> tuple[CommandChannel, EscalationStore]:
    cfg = CommandConfig(command=command, verify=VerifyConfig(command=check, within=30, interval=10))
    return CommandChannel("command[0]", cfg), EscalationStore(tmp / "state.sqlite")


def test_a_failing_hook_is_a_failed_remediation_with_its_exit_status_and_output(tmp_path: Path) -> None:
    ch, runs = _hook(tmp_path, [sys.executable, "-c", "import sys; sys.stderr.write('unit not found'); sys.exit(5)"],
                     ["/bin/true"])
    clock = FakeClock()
    r = asyncio.run(remediate(ch, _note(), runs, clock=clock, sleep=clock.sleep))
    assert r.status == "remediation_failed" and "exit status 5" in r.note and "unit not found" in r.note
    assert r.note.startswith(FAILED)
    again = asyncio.run(remediate(ch, _note(), runs, clock=clock, sleep=clock.sleep))
    assert again.status == "remediation_skipped"  # the failed run counts: no restart loop
    clock.t += 1800
    assert asyncio.run(remediate(ch, _note(), runs, clock=clock, sleep=clock.sleep)).status == "remediation_failed"


def test_a_check_that_never_passes_fails_after_within_on_the_fake_clock(tmp_path: Path) -> None:
    ch, runs = _hook(tmp_path, ["/bin/true"], ["/bin/false"])
    clock = FakeClock()
    r = asyncio.run(remediate(ch, _note(), runs, clock=clock, sleep=clock.sleep))
    assert r.status == "remediation_failed" and "still unhealthy 30 s after" in r.note
    assert "false exited with 1" in r.note
    assert clock.t == 1030  # probes at 1000, 1010, 1020, 1030


def test_a_check_that_passes_is_remediated(tmp_path: Path) -> None:
    ch, runs = _hook(tmp_path, ["/bin/true"], ["/bin/true"])
    clock = FakeClock()
    r = asyncio.run(remediate(ch, _note(), runs, clock=clock, sleep=clock.sleep))
    assert r.status == "remediated" and r.note.startswith(RECOVERED) and "healthy 0.0 s after" in r.note


def test_promql_verification_reads_only_the_samples_stored_after_the_command(ch_dsn: str, tmp_path: Path) -> None:
    """Real chDB: probe_success was 1 long before, 0 until the command ran at T, 1 from T+12 s on."""
    t0 = 1_790_000_000.0  # recent: the samples table's TTL drops rows older than its retention
    client = get_reader(ch_dsn)
    rd.create_tables(client)
    ts = np.arange(t0 - 100, t0 + 30, 5.0)
    up = np.where((ts < t0 - 50) | (ts >= t0 + 12), 1.0, 0.0)
    rd.load(client, rd.Dataset(samples=[rd.Series("probe_success", {"service": "web"}, ts, up),
                                        rd.Series("probe_success", {"service": "db"}, ts, np.ones(ts.size))]))
    read = clickhouse_samples(ch_dsn)
    got = read(["probe_success"], t0)
    assert sorted((n, lb["service"], len(t)) for n, lb, t, _ in got) == [("probe_success", "db", 5),
                                                                          ("probe_success", "web", 5)]
    cfg = CommandConfig(command=["/bin/true"], verify=VerifyConfig(
        promql='probe_success{service="web"} == 1', within=60, interval=10))
    ch, runs = CommandChannel("command[0]", cfg), EscalationStore(tmp_path / "state.sqlite")
    clock = FakeClock()
    clock.t = t0
    r = asyncio.run(remediate(ch, _note(), runs, clock=clock, sleep=clock.sleep, samples=read))
    # at T there is no sample after the command yet, at T+10 the newest is 0 (the healthy ones before T-50
    # do not count), at T+20 it is 1
    assert r.status == "remediated" and clock.t == t0 + 20 and "returned 1 series" in r.note
    assert asyncio.run(promql_health(cfg.verify, read, t0, t0 + 10))[0] is False  # type: ignore[arg-type]


def test_a_promql_verify_is_checked_when_the_file_loads() -> None:
    with pytest.raises(SourceError, match=r"verify.*not supported yet|verify.*cannot parse"):
        load_notify_config(BASE.replace("VERIFY", '{promql: "rate(probe_success[5m]"}'))
    assert load_notify_config(BASE.replace("VERIFY", '{promql: "up == 1"}')).receivers["web"]
