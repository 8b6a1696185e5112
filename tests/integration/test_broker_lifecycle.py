"""Given a process that started the dev broker and is then killed with SIGKILL (a test run stopped by a
timeout, a crashed `watchkeeper up`), expect the broker to go with it instead of lingering on its port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

CHILD = ("from plumbing.broker import start_broker, free_port; import time; "
         "p = start_broker('127.0.0.1', free_port()); print(p.pid, flush=True); time.sleep(120)")


@pytest.mark.skipif(sys.platform != "linux", reason="parent-death signal is Linux only")
def test_broker_dies_with_the_process_that_started_it() -> None:
    parent = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    broker_pid = int(parent.stdout.readline())
    os.kill(broker_pid, 0)  # running
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(broker_pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(broker_pid, signal.SIGKILL)
    pytest.fail(f"tansu (pid {broker_pid}) outlived the process that started it")
