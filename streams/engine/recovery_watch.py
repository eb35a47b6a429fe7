"""Is table recovery stuck? The answer behind the worker's liveness page.

A worker whose recovery stops making progress never becomes ready and never processes its
partitions, yet its event loop still answers. Reporting that as unhealthy lets Kubernetes
restart it, which gives its partitions to a fresh consumer instead of leaving them stuck.
"""

from __future__ import annotations

from dataclasses import dataclass

# A healthy recovery reads records the whole time, even of the benchmark's largest tables
# (bench/results/latest.md); none goes two minutes without reading a single changelog record.
RECOVERY_STALL_S = 120.0


@dataclass(frozen=True)
class RecoveryProgress:
    in_recovery: bool
    started_at: float | None  # monotonic seconds
    last_record_at: float | None  # monotonic seconds; None before the first record
    records_left: int


def recovery_stalled(progress: RecoveryProgress, now: float, stall_s: float) -> bool:
    """True when recovery still has records to read but has read none for `stall_s`."""
    if not progress.in_recovery or progress.records_left <= 0 or progress.started_at is None:
        return False
    last = progress.last_record_at if progress.last_record_at is not None else 0.0
    return now - max(progress.started_at, last) >= stall_s
