"""Command hooks cannot hurt the notification sink (issue 16).

Given the sink running as `watchkeeper up` runs it (`watchkeeper sink notify`, a subprocess, on the session's
tansu broker) and hooks that misbehave, expect: a hook printing 10 MB is read up to the cap (64 KiB by default)
and its record says how many bytes were dropped; a NUL byte in a label (which no environment variable can
hold), a missing executable and a hook that always times out are each a recorded delivery failure, the last
one given up after `give_up_after_seconds`, none retried forever.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import write_config
from tests.integration.kafka_io import consume_until, produce
from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.receiver_configs import CommandConfig
from watchkeeper.plumbing.config import Config
from watchkeeper.schemas.alerts import AlertEvent
from watchkeeper.schemas.codec import encode
from watchkeeper.sinks.channels.base import DeliveryError
from watchkeeper.sinks.channels.command import CommandChannel

TEN_MB = 10_000_000
CAP = 64 * 1024
PRINT_10_MB = f"import sys; sys.stdout.write('x' * {TEN_MB}); sys.stderr.write('e' * {TEN_MB})"


def _am_config(hooks: dict[str, list[str]], timeout: str = "30s") -> str:
    """One route per alertname, each to a receiver with one command hook."""
    routes = "\n".join(f"    - matchers: ['alertname=\"{name}\"']\n      receiver: {name}" for name in hooks)
    receivers = "\n".join(
        f"  - name: {name}\n    command_configs:\n      - command: {orjson.dumps(cmd).decode()}\n"
        f"        timeout: {timeout}" for name, cmd in hooks.items())
    return (f"route:\n  receiver: {next(iter(hooks))}\n  group_by: [alertname]\n  group_wait: 0s\n"
            f"  group_interval: 1s\n  repeat_interval: 1h\n  routes:\n{routes}\nreceivers:\n{receivers}\n")


def _alert(name: str, **labels: str) -> AlertEvent:
    return AlertEvent(fingerprint=f"{abs(hash(name)) % 16**16:016x}", rule=name, state="firing", severity="high",
                      labels={"alertname": name, **labels}, starts_at=1_790_000_000.0, event_time=1_790_000_000.0)


def _run_sink(cfg: Config, tmp: Path, am: str, alerts: list[AlertEvent],
              done: Callable[[list[dict[str, Any]]], bool], **notify: float) -> list[dict[str, Any]]:
    (tmp / "alertmanager.yml").write_text(am)
    cfg.notify.alertmanager_config = str(tmp / "alertmanager.yml")
    for k, v in notify.items():
        setattr(cfg.notify, k, v)
    cfg_path = write_config(cfg, tmp / "watchkeeper.yaml")
    log_path = tmp / "sink.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "watchkeeper", "sink", "notify", "--config", str(cfg_path)],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        asyncio.run(produce(cfg.kafka.bootstrap, cfg.kafka.topics.alerts,
                            [(a.fingerprint.encode(), encode(a)) for a in alerts]))
        recs = asyncio.run(consume_until(cfg.kafka.bootstrap, cfg.kafka.topics.notifications,
                                         lambda rs: done([orjson.loads(r.value) for r in rs]), timeout=90))
        records = [orjson.loads(r.value) for r in recs]
        assert done(records), (records, log_path.read_text()[-3000:])
        assert proc.poll() is None, log_path.read_text()[-3000:]
        return records
    finally:
        proc.terminate()
        proc.wait(30)


def _final(records: list[dict[str, Any]], receiver: str) -> dict[str, Any] | None:
    return next((r for r in records if r["receiver"] == receiver and r["status"] in ("sent", "failed")), None)


def test_hook_output_is_capped_and_nul_labels_and_missing_executables_are_recorded_failures(
        wk_config: Config, tmp_path: Path) -> None:
    hooks = {
        "Loud": [sys.executable, "-c", PRINT_10_MB],
        "Nul": [sys.executable, "-c", "pass"],
        "Missing": [str(tmp_path / "no-such-hook")],
    }
    alerts = [_alert("Loud"), _alert("Nul", path="/var/\x00log"), _alert("Missing")]
    records = _run_sink(wk_config, tmp_path, _am_config(hooks), alerts,
                        lambda rs: all(_final(rs, name) is not None for name in hooks))
    loud = _final(records, "Loud")
    assert loud is not None and loud["status"] == "sent"
    dropped = TEN_MB - CAP
    assert loud["error"] == (f"{sys.executable} output capped (stdout: {dropped} bytes over the {CAP}-byte cap "
                             f"dropped; stderr: {dropped} bytes over the {CAP}-byte cap dropped)")
    nul = _final(records, "Nul")
    assert nul is not None and nul["status"] == "failed" and nul["attempt"] == 1
    assert "embedded null byte" in nul["error"] and "WK_LABEL_PATH" in nul["error"], nul["error"]
    missing = _final(records, "Missing")
    assert missing is not None and missing["status"] == "failed"
    assert "cannot run" in missing["error"] and "No such file" in missing["error"], missing["error"]


def test_a_hook_that_always_times_out_is_given_up(wk_config: Config, tmp_path: Path) -> None:
    hooks = {"Slow": [sys.executable, "-c", "import time; time.sleep(60)"]}
    records = _run_sink(wk_config, tmp_path, _am_config(hooks, timeout="300ms"), [_alert("Slow")],
                        lambda rs: _final(rs, "Slow") is not None,
                        retry_initial_seconds=0.1, retry_max_seconds=0.2, give_up_after_seconds=2.0)
    retrying = [r for r in records if r["receiver"] == "Slow" and r["status"] == "retrying"]
    final = _final(records, "Slow")
    assert final is not None and final["status"] == "failed" and "timed out after 0.3 s" in final["error"]
    assert retrying and final["attempt"] == len(retrying) + 1


def _note(**labels: str) -> Notification:
    a = _alert("Hook", **labels)
    return Notification("r", "command[0]", "{}:{}", {"alertname": "Hook"}, [a], 1_790_000_000.0)


@pytest.mark.parametrize("cap", [0, 1, 65_536])
async def test_the_cap_is_configurable_and_exact(cap: int) -> None:
    channel = CommandChannel("command[0]", CommandConfig(
        command=[sys.executable, "-c", "import sys; sys.stdout.write('y' * 100_000)"], max_output_bytes=cap))
    note = await channel.send(_note())
    assert note == f"{sys.executable} output capped (stdout: {100_000 - cap} bytes over the {cap}-byte cap dropped)"


async def test_quiet_hooks_have_no_note_and_a_failing_one_shows_its_stderr_tail() -> None:
    assert await CommandChannel("command[0]", CommandConfig(command=[sys.executable, "-c", "pass"])).send(_note()) \
        is None
    failing = CommandChannel("command[0]", CommandConfig(
        command=[sys.executable, "-c", "import sys; sys.stderr.write('z' * 200_000 + 'END'); sys.exit(2)"],
        max_output_bytes=1000))
    with pytest.raises(DeliveryError) as err:
        await failing.send(_note())
    assert err.value.retryable and "exited with 2" in str(err.value)
    assert "stderr: 199003 bytes over the 1000-byte cap dropped" in str(err.value)


async def test_a_nul_byte_in_a_label_is_a_final_delivery_error() -> None:
    channel = CommandChannel("command[0]", CommandConfig(command=[sys.executable, "-c", "pass"]))
    with pytest.raises(DeliveryError) as err:
        await channel.send(_note(job="a\x00b"))
    assert not err.value.retryable and "WK_LABEL_JOB" in str(err.value)
