"""The worker's root logger keeps the level the operator chose."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from streams.settings import load_settings
from streams.worker import Worker, build_worker_app


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield root
    root.setLevel(level)
    root.handlers[:] = handlers


@pytest.mark.parametrize("loglevel", ["warning", "error"])
def test_debug_records_are_not_built_at_a_quieter_level(
    root_logger: logging.Logger, loglevel: str
) -> None:
    # Faust's own worker sets the root logger to DEBUG at WARNING and above (for its
    # terminal spinner): aiokafka then builds a record for every message it sends.
    app = build_worker_app(load_settings(), "delivery").app
    worker = Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker._setup_logging()
    assert not logging.getLogger("aiokafka.producer.producer").isEnabledFor(logging.DEBUG)
    assert root_logger.level == getattr(logging, loglevel.upper())
