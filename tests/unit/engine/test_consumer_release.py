"""What the engine's consumer hands on from the records it holds: round-robin across
partitions, and nothing of a partition whose stream buffer is under pressure until it drains
(Faust would hand those on and then wait on the full buffer, holding back every partition)."""

from __future__ import annotations

import gc
from collections import deque
from types import SimpleNamespace
from typing import Any

from streams.engine.consumer import OrderedConsumer
from streams.engine.worker import FULL_EVERY, MIDDLE_EVERY, YOUNG_THRESHOLD, quiet_collector

JOBS_0, JOBS_1, RETRIES_0, CHANGELOG_0 = "jobs/0", "jobs/1", "retries/0", "settled-changelog/0"


def holding(plain: dict[str, list[int]], buffered: set[str]) -> Any:
    return SimpleNamespace(
        _plain={tp: deque(records) for tp, records in plain.items()},
        _buffered_partitions=buffered,
        _is_changelog_tp=lambda tp: "changelog" in tp,
    )


def release(consumer: Any, releasable: set[str] | None = None, on_each: Any = None) -> list[Any]:
    handed = []
    for tp, record in OrderedConsumer._release_plain(consumer, releasable, lambda: True,
                                                     lambda: True):  # fmt: skip
        handed.append((tp, record))
        if on_each is not None:
            on_each(tp, record)
    return handed


def test_held_records_go_round_robin_across_partitions() -> None:
    consumer = holding({JOBS_0: [1, 2, 3], JOBS_1: [10, 11]}, set())
    assert release(consumer) == [(JOBS_0, 1), (JOBS_1, 10), (JOBS_0, 2), (JOBS_1, 11),
                                 (JOBS_0, 3)]  # fmt: skip


def test_a_buffered_partition_keeps_its_records_while_the_others_go_on() -> None:
    consumer = holding({JOBS_0: [1, 2], RETRIES_0: [7, 8, 9], CHANGELOG_0: [5]}, {RETRIES_0})
    handed = release(consumer)
    assert sorted(handed) == sorted([(CHANGELOG_0, 5), (JOBS_0, 1), (JOBS_0, 2)])
    assert list(consumer._plain[RETRIES_0]) == [7, 8, 9]  # held, not dropped

    consumer._buffered_partitions.discard(RETRIES_0)  # its buffer drained
    assert release(consumer) == [(RETRIES_0, 7), (RETRIES_0, 8), (RETRIES_0, 9)]


def test_a_partition_that_comes_under_pressure_mid_release_stops_at_once() -> None:
    consumer = holding({RETRIES_0: [1, 2, 3, 4], JOBS_0: [10, 11, 12]}, set())

    def pressure_after_two(tp: str, record: int) -> None:
        if tp == RETRIES_0 and record == 2:  # Faust's on_buffer_full, while handing on
            consumer._buffered_partitions.add(RETRIES_0)

    handed = release(consumer, on_each=pressure_after_two)
    assert [r for tp, r in handed if tp == RETRIES_0] == [1, 2]
    assert [r for tp, r in handed if tp == JOBS_0] == [10, 11, 12]
    assert list(consumer._plain[RETRIES_0]) == [3, 4]


def test_a_changelog_partition_is_never_held_back_by_pressure() -> None:
    consumer = holding({CHANGELOG_0: [1, 2]}, {CHANGELOG_0})
    assert release(consumer) == [(CHANGELOG_0, 1), (CHANGELOG_0, 2)]


def test_the_worker_freezes_what_it_built_and_spaces_out_collections() -> None:
    before = gc.get_threshold()
    try:
        garbage: list[Any] = []
        garbage.append(garbage)  # a cycle: collected before the freeze, not frozen with it
        del garbage
        quiet_collector()
        assert gc.get_threshold() == (YOUNG_THRESHOLD, MIDDLE_EVERY, FULL_EVERY)
        assert gc.get_freeze_count() > 1000  # this process's modules, classes, functions
        assert gc.get_count()[0] < 100  # collected just before
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
