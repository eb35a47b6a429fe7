"""When the liveness page calls table recovery stuck."""

from __future__ import annotations

from streams.engine.recovery import health
from streams.engine.recovery_watch import RecoveryProgress, recovery_stalled


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


class FaustRecovery:
    """The attributes of faust-streaming 0.15.3's Recovery that the liveness page reads."""

    in_recovery = True
    _recovery_started_at = 0.0
    _active_events_received_at: dict[str, float] = {}  # noqa: RUF012

    def active_remaining(self) -> dict[str, int]:
        return {"changelog-0": 95}


def test_health_is_ok_while_recovery_reads_and_503_when_it_stalls() -> None:
    assert health(FaustRecovery(), stall_s=1e9) == (200, {"status": "ok"})
    assert health(FaustRecovery(), stall_s=0.0) == (503, {"status": "recovery stalled"})


def test_a_faust_hook_that_moved_is_unhealthy_not_healthy() -> None:
    class Moved(FaustRecovery):
        def __getattribute__(self, name: str) -> object:
            if name == "_active_events_received_at":
                raise AttributeError(name)
            return super().__getattribute__(name)

    status, body = health(Moved(), stall_s=1e9)
    assert status == 503
    assert body["status"] == "engine hook broken"
    assert "_active_events_received_at" in body["detail"]
