"""Command hooks: run a configured command (no shell) with the notification as JSON on stdin and in
`WK_*` environment variables, killed (with its process group) after the timeout. For auto-remediation,
such as restarting a service when its alert fires.

A hook is somebody else's program, so nothing it does may hurt the sink: its stdout and stderr are read
up to `max_output_bytes` each (the rest is read and dropped, and the delivery record says how much), and
every way it can fail to run (missing executable, a NUL byte in a label, which no argument or environment
variable can hold, a timeout) is a DeliveryError, recorded like any failed delivery."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass

import orjson

from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.receiver_configs import CommandConfig
from watchkeeper.sinks.channels.base import DeliveryError

_CHUNK = 64 * 1024


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


class CappedOutput:
    """The first `cap` bytes of a stream, and how many bytes after them were read and dropped."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.kept = bytearray()
        self.dropped = 0

    async def drain(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        while chunk := await stream.read(_CHUNK):
            room = self.cap - len(self.kept)
            if room > 0:
                self.kept += chunk[:room]
            self.dropped += max(0, len(chunk) - max(room, 0))


async def _feed(stdin: asyncio.StreamWriter | None, body: bytes) -> None:
    """Write the notification to the hook's stdin; a hook that does not read it is not an error."""
    if stdin is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stdin.write(body)
        await stdin.drain()
    stdin.close()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        await stdin.wait_closed()


def _dropped_note(name: str, out: CappedOutput, err: CappedOutput) -> str:
    parts = [f"{what}: {o.dropped} bytes over the {o.cap}-byte cap dropped"
             for what, o in (("stdout", out), ("stderr", err)) if o.dropped]
    return f"{name} output capped ({'; '.join(parts)})" if parts else ""


@dataclass
class HookRun:
    """One run of a hook: its exit status (None: killed at the timeout), the kept output and the cap note."""

    name: str
    returncode: int | None
    stdout: str
    stderr: str
    note: str
    timeout: float

    def summary(self, limit: int = 300) -> str:
        """Exit status and the output's tail, bounded, for a delivery record or an escalation."""
        status = f"killed after {self.timeout:g} s" if self.returncode is None else f"exit status {self.returncode}"
        out = (self.stderr.strip() or self.stdout.strip())[-limit:]
        text = f"{self.name}: {status}" + (f"; output: {out}" if out else "")
        return f"{text} ({self.note})" if self.note else text


class CommandChannel:
    def __init__(self, integration: str, cfg: CommandConfig) -> None:
        self.integration, self.cfg = integration, cfg

    async def send(self, n: Notification) -> str | None:
        run = await self.run(n)
        if run.returncode is None:
            why = f"{run.name} timed out after {self.cfg.timeout:g} s (killed)"
            raise DeliveryError(f"{why}; {run.note}" if run.note else why, True)
        if run.returncode != 0:
            why = f"{run.name} exited with {run.returncode}: {run.stderr.strip()[-300:]}"
            raise DeliveryError(f"{why} ({run.note})" if run.note else why, True)
        return run.note or None

    async def run(self, n: Notification) -> HookRun:
        """Run the hook once; a hook that cannot start at all is a (final) DeliveryError."""
        name = self.cfg.command[0]
        body = orjson.dumps(n.webhook_payload())
        env = {**os.environ, **self.cfg.env, **command_env(n)}
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.cfg.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True)
        except ValueError as exc:  # "embedded null byte": from a label value, so every retry would fail too
            bad = sorted(k for k, v in env.items() if "\0" in v or "\0" in k)
            where = f" (in {', '.join(bad)})" if bad else " (in the command's arguments)"
            raise DeliveryError(f"cannot run {name}: {exc}{where}; a NUL byte cannot be passed to a command",
                                False) from None
        except OSError as exc:
            raise DeliveryError(f"cannot run {name}: {exc.strerror or exc}", False) from None
        out, err = CappedOutput(self.cfg.max_output_bytes), CappedOutput(self.cfg.max_output_bytes)
        io = asyncio.gather(_feed(proc.stdin, body), out.drain(proc.stdout), err.drain(proc.stderr), proc.wait())
        code: int | None
        try:
            await asyncio.wait_for(io, self.cfg.timeout)
            code = proc.returncode
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            code = None
        return HookRun(name, code, out.kept.decode("utf-8", "replace"), err.kept.decode("utf-8", "replace"),
                       _dropped_note(name, out, err), self.cfg.timeout)
