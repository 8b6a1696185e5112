"""The worker's root logger keeps its level: Faust's spinner would set it to DEBUG for good."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import faust
import pytest

from watchkeeper.agents.app import make_worker


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    yield root
    root.setLevel(level)
    root.handlers[:] = handlers


def _app() -> faust.App:
    return faust.App("wk-test-logging", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)


def test_faust_worker_alone_sets_root_to_debug(root_logger: logging.Logger) -> None:
    """Why make_worker exists: a plain faust.Worker at loglevel warning leaves the root at DEBUG."""
    faust.Worker(_app(), loglevel="warning", quiet=True, redirect_stdouts=False)._setup_logging()
    assert root_logger.level == logging.DEBUG


def test_make_worker_keeps_the_level(root_logger: logging.Logger) -> None:
    make_worker(_app(), "warning")._setup_logging()
    assert root_logger.level == logging.WARNING
    assert not logging.getLogger("aiokafka.conn").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("aiokafka.conn").isEnabledFor(logging.WARNING)
