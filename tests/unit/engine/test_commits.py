"""The commit rule: only through a run of finished records (`streams.engine.commits`)."""

from __future__ import annotations

from streams.engine.commits import committable


def test_a_single_missing_offset_is_never_committed_over() -> None:
    # Faust's rule committed 55+ here once 0..53 and 55.. were acknowledged.
    assert committable(54, acked=[55, 56, 57], gaps=[]) is None
    assert committable(0, acked=[*range(54), 55, 56], gaps=[]) == 54


def test_with_no_commit_yet_the_run_starts_at_the_first_record_handed_on() -> None:
    assert committable(10, acked=[11, 12], gaps=[]) is None
    assert committable(10, acked=[10, 11, 12], gaps=[]) == 13
    assert committable(None, acked=[0, 1], gaps=[]) is None


def test_known_gaps_count_as_finished_but_only_where_they_are() -> None:
    # A transaction marker at 3: records 0..2 and 4..5 finished.
    assert committable(0, acked=[0, 1, 2, 4, 5], gaps=[(3, 4)]) == 6
    assert committable(0, acked=[0, 1, 2, 5], gaps=[(3, 4)]) == 4


def test_a_long_gap_is_passed_over_whole() -> None:
    # A compacted partition: 2..999_999 removed.
    assert committable(0, acked=[0, 1, 1_000_000], gaps=[(2, 1_000_000)]) == 1_000_001
    assert committable(0, acked=[0, 1], gaps=[(2, 1_000_000)]) == 1_000_000
