"""Test peers for delivery: a local HTTP server that records requests and fails on demand (the stand-in
for webhook receivers, Slack and PagerDuty), and a real Alertmanager from the Debian package."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from watchkeeper.plumbing.broker import free_port


@dataclass
class Recorded:
    path: str
    body: Any
    time: float


class ServedApp:
    """An aiohttp app served on 127.0.0.1:`port` from a thread with its own event loop, so tests and the code
    under test (another loop or process) can reach it; every test peer below runs this way."""

    def __init__(self, app: web.Application, port: int, ssl_context: ssl.SSLContext | None = None) -> None:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app)

        async def main() -> None:
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", port, ssl_context=ssl_context).start()
            ready.set()

        def run() -> None:
            self._loop.run_until_complete(main())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@dataclass
class RecordingServer:
    """aiohttp in a thread. `fail_until` (epoch) makes it answer 500; `delay` slows every answer."""

    port: int = field(default_factory=free_port)
    requests: list[Recorded] = field(default_factory=list)
    fail_until: float = 0.0
    delay: float = 0.0
    status: int = 200

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RecordingServer:
        async def handle(request: web.Request) -> web.Response:
            raw = await request.read()
            if self.delay:
                await asyncio.sleep(self.delay)
            if time.time() < self.fail_until:
                return web.Response(status=500, text="failing on purpose")
            if self.status >= 300:
                return web.Response(status=self.status, text="refused on purpose")
            self.requests.append(Recorded(request.path, orjson.loads(raw) if raw else None, time.time()))
            return web.Response(status=200, text="ok")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        self._served = ServedApp(app, self.port)
        return self

    def stop(self) -> None:
        self._served.stop()

    def at(self, path: str) -> list[Recorded]:
        return [r for r in list(self.requests) if r.path == path]


def start_alertmanager(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        raise RuntimeError("prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)")
    port = free_port()
    (tmp / "am.yml").write_text("route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n")
    log = open(tmp / "alertmanager.log", "wb")  # noqa: SIM115 (the child owns it)
    proc = subprocess.Popen([binary, f"--config.file={tmp / 'am.yml'}", f"--storage.path={tmp / 'am-data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"http://127.0.0.1:{port}"
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"Alertmanager did not start: {(tmp / 'alertmanager.log').read_text()[-2000:]}")
