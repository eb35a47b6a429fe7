"""Which changelog records the consumer re-reads after Faust discarded part of a fetch."""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

from streams.kafka_transport import first_unread_offsets


class Record(NamedTuple):
    offset: int


def records(first: int, last: int) -> list[Record]:
    return [Record(offset) for offset in range(first, last + 1)]


ROOMS_LOG = ("omnihooks-rooms-changelog", 0)
MESSAGES_LOG = ("omnihooks-messages-changelog", 1)
ROOMS = ("rooms", 0)


def test_a_discarded_changelog_batch_is_read_again_from_its_first_record() -> None:
    fetched = {ROOMS_LOG: records(0, 94), ROOMS: records(40, 44)}
    assert first_unread_offsets(fetched, Counter(), {ROOMS_LOG}) == {ROOMS_LOG: 0}


def test_a_batch_cut_short_is_read_again_from_the_first_record_not_handed_on() -> None:
    fetched = {ROOMS_LOG: records(10, 19), MESSAGES_LOG: records(50, 52)}
    yielded = Counter({ROOMS_LOG: 4, MESSAGES_LOG: 3})
    assert first_unread_offsets(fetched, yielded, {ROOMS_LOG, MESSAGES_LOG}) == {ROOMS_LOG: 14}


def test_stream_partitions_and_fully_handed_on_batches_are_left_alone() -> None:
    fetched = {ROOMS_LOG: records(0, 2), ROOMS: records(7, 9)}
    assert first_unread_offsets(fetched, Counter({ROOMS_LOG: 3}), {ROOMS_LOG}) == {}
