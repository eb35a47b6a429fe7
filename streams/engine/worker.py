"""Faust's worker without its terminal spinner, and with a collector tuned for a worker.

At --loglevel WARNING or above Faust installs the spinner by setting the root logger to
DEBUG, so every debug call in aiokafka and Faust builds a log record only for the handler to
drop it: a sizeable share of a table-writing agent's time at WARNING. The root logger keeps
the operator's level instead.

Python's cycle collector stops the event loop for a full (oldest-generation) pass whenever
the objects promoted since the last one reach a quarter of those already there. A worker's
long-lived objects are mostly Faust, aiokafka and the modules, and jobs held for an open
endpoint (a task, its coroutines, the decoded job) add to them at every hold: with many jobs
held, a long full pass came every few seconds, and each one delayed every healthy job behind
it (the benchmark's isolation stage; docs/history.md). So once started, the worker freezes
what it built (never scanned again; still freed by reference counting when dropped) and
collects the young generations less often, which lets a job finished within the interval die
young instead of being promoted. Cycles still get collected, only later: a full pass at most
every `FULL_EVERY` passes of the middle generation.
"""

from __future__ import annotations

import gc
import logging

import faust

# gen0 every 20,000 net allocations (Python's default: 700), gen1 every 50 of those, gen2
# after 100 gen1 passes and only if a quarter of its objects are new (Python's own rule).
YOUNG_THRESHOLD = 20_000
MIDDLE_EVERY = 50
FULL_EVERY = 100


def quiet_collector() -> None:
    """Freeze every object alive now and space out the collector's passes (see above)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_EVERY, FULL_EVERY)


class Worker(faust.Worker):
    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        quiet_collector()
