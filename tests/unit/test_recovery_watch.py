"""When the liveness page calls table recovery stuck."""

from __future__ import annotations

from streams.recovery_watch import RecoveryProgress, recovery_stalled


def progress(
    started_at: float | None = 100.0,
    last_record_at: float | None = None,
    records_left: int = 95,
    in_recovery: bool = True,
) -> RecoveryProgress:
    return RecoveryProgress(in_recovery, started_at, last_record_at, records_left)


def test_no_record_read_for_the_stall_time_is_a_stall() -> None:
    assert recovery_stalled(progress(), now=220.0, stall_s=120)
    assert not recovery_stalled(progress(), now=219.0, stall_s=120)


def test_reading_records_is_progress_however_long_recovery_takes() -> None:
    assert not recovery_stalled(progress(last_record_at=1000.0), now=1100.0, stall_s=120)
    assert recovery_stalled(progress(last_record_at=1000.0), now=1120.0, stall_s=120)


def test_nothing_left_to_read_or_not_recovering_is_never_a_stall() -> None:
    assert not recovery_stalled(progress(records_left=0), now=10_000.0, stall_s=120)
    assert not recovery_stalled(progress(in_recovery=False), now=10_000.0, stall_s=120)
    assert not recovery_stalled(progress(started_at=None), now=10_000.0, stall_s=120)
