"""The worker's Faust app: a lost broker answer costs seconds, not Faust's 20 minutes; and a stalled worker
can be asked where each of its tasks waits."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import faust
import pytest

from watchkeeper.agents.app import PRODUCER_REQUEST_TIMEOUT_SECONDS, create_app
from watchkeeper.agents.task_dump import awaits, dump_tasks
from watchkeeper.commands.worker import worker_settings
from watchkeeper.plumbing.config import Config


def test_the_producer_gives_up_a_request_as_kafka_does(tmp_path: Path) -> None:
    app = create_app(worker_settings(Config(data_dir=str(tmp_path)), agents=()))
    assert app.conf.producer_request_timeout == PRODUCER_REQUEST_TIMEOUT_SECONDS == 30.0
    assert faust.Settings("x").producer_request_timeout == 1200.0  # what it replaces


async def _inner(gate: asyncio.Event) -> None:
    await gate.wait()


async def _outer(gate: asyncio.Event) -> None:
    await _inner(gate)


def test_the_dump_names_every_frame_a_task_waits_in(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> list[str]:
        gate = asyncio.Event()
        task = asyncio.create_task(_outer(gate), name="stuck-feed")
        await asyncio.sleep(0)
        chain = awaits(task.get_coro())
        with caplog.at_level(logging.WARNING, logger="watchkeeper.worker"):
            dump_tasks()
        gate.set()
        await task
        return chain

    chain = asyncio.run(main())
    assert [line.rsplit(" ", 1)[1] for line in chain[:3]] == ["_outer", "_inner", "wait"]
    assert "--- stuck-feed" in caplog.text and "_inner" in caplog.text


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "abc"])
def test_warn_loop_blocked_takes_only_a_positive_duration(value: str) -> None:
    from watchkeeper.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["worker", "--warn-loop-blocked", value])
    assert exc.value.code == 2
