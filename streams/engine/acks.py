"""Which events an agent finished: the only ones whose offsets may be committed.

An agent calls `finish(event)` once the record is processed (its state written, its jobs
sent) or sent to `rejected`. The worker's consumer refuses every other acknowledgement: those
come from Faust's stream skipping an event no agent saw (see `streams.engine.consumer`).
"""

from __future__ import annotations

from typing import Any
from weakref import WeakSet

_finished: WeakSet[Any] = WeakSet()


def finish(event: Any) -> None:
    """Acknowledge an event its agent finished: its offset may now be committed."""
    _finished.add(event.message)
    event.ack()


def is_finished(message: Any) -> bool:
    return message in _finished
