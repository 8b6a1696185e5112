"""Command hooks: run a configured command (no shell) with the notification as JSON on stdin and in
`WK_*` environment variables, killed (with its process group) after the timeout. For auto-remediation,
such as restarting a service when its alert fires."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

import orjson

from core.notify.notification import Notification
from core.notify.receiver_configs import CommandConfig
from sinks.channels.base import DeliveryError


def command_env(n: Notification) -> dict[str, str]:
    first = n.alerts[0] if n.alerts else None
    env = {
        "WK_STATUS": n.status, "WK_RECEIVER": n.receiver, "WK_GROUP_KEY": n.group_key,
        "WK_ALERTS_COUNT": str(len(n.alerts)), "WK_FIRING_COUNT": str(len(n.firing())),
        "WK_ALERTNAME": n.common_labels.get("alertname", first.rule if first else ""),
        "WK_SEVERITY": n.common_labels.get("severity", ""),
    }
    for k, v in n.common_labels.items():
        key = "WK_LABEL_" + "".join(c if c.isalnum() else "_" for c in k).upper()
        env[key] = v
    return env


class CommandChannel:
    def __init__(self, integration: str, cfg: CommandConfig) -> None:
        self.integration, self.cfg = integration, cfg

    async def send(self, n: Notification) -> None:
        body = orjson.dumps(n.webhook_payload())
        env = {**os.environ, **self.cfg.env, **command_env(n)}
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.cfg.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True)
        except OSError as exc:
            raise DeliveryError(f"cannot run {self.cfg.command[0]}: {exc.strerror}", False) from None
        try:
            _, err = await asyncio.wait_for(proc.communicate(body), self.cfg.timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            why = f"{self.cfg.command[0]} timed out after {self.cfg.timeout:g} s (killed)"
            raise DeliveryError(why, True) from None
        if proc.returncode != 0:
            tail = err.decode("utf-8", "replace").strip()[-300:]
            raise DeliveryError(f"{self.cfg.command[0]} exited with {proc.returncode}: {tail}", True)
