"""What the liveness page reads from Faust's table recovery (private attributes of
faust-streaming 0.15.3's `Recovery` service, checked by `tests/unit/engine/test_engine_hooks.py`).

Read strictly: a moved attribute raises instead of reading as "no progress to judge", so
`/health` reports a broken hook as unhealthy, never as healthy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from time import monotonic
from typing import Any

from streams.engine.recovery_watch import RECOVERY_STALL_S, RecoveryProgress, recovery_stalled

log = logging.getLogger(__name__)


def progress_of(recovery: Any) -> RecoveryProgress:
    received: Mapping[Any, float] = recovery._active_events_received_at
    remaining: Iterable[int] = recovery.active_remaining().values()
    return RecoveryProgress(
        in_recovery=bool(recovery.in_recovery),
        started_at=recovery._recovery_started_at,
        last_record_at=max(received.values(), default=None),
        records_left=sum(max(0, left) for left in remaining),
    )


def health(recovery: Any, stall_s: float = RECOVERY_STALL_S) -> tuple[int, dict[str, str]]:
    """The liveness answer: 200, or 503 when recovery is stuck or a Faust hook is gone."""
    try:
        progress = progress_of(recovery)
    except (AttributeError, TypeError) as exc:
        return 503, {"status": "engine hook broken", "detail": f"{type(exc).__name__}: {exc}"}
    if recovery_stalled(progress, monotonic(), stall_s):
        return 503, {"status": "recovery stalled"}
    return 200, {"status": "ok"}


def report_restores(app: Any) -> None:
    """Log, at every rebalance, how much of the changelogs this worker reads before it is
    ready: one line an operator (and the standby test) reads to tell a warm takeover (a
    standby's store, or a restarted pod's volume: a tail to read) from a restore from the
    start. Faust's own tables of offsets say the same spread over many lines."""
    recovery = app.tables.recovery
    seek = recovery._seek_offsets  # once per rebalance and kind, offsets and ends known

    async def seek_offsets(consumer: Any, tps: Any, offsets: Any, title: str) -> Any:
        if title == "active":
            remaining: Mapping[Any, int] = recovery.active_remaining()
            records = sum(max(0, left) for left in remaining.values())
            log.info(
                "table recovery: %d active changelog partitions, %d records to read",
                len(recovery.active_tps), records,
            )  # fmt: skip
        return await seek(consumer, tps, offsets, title)

    recovery._seek_offsets = seek_offsets
