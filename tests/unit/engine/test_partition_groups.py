"""The merge rule for co-partitioned inputs, without a broker (`streams.engine.partition_groups`)."""

from __future__ import annotations

from typing import NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.engine.partition_groups import PartitionGroups


class TP(NamedTuple):
    topic: str
    partition: int


class Rec(NamedTuple):
    offset: int
    timestamp: int | None
    name: str = ""


ROOMS, MESSAGES, CRM = TP("rooms", 0), TP("messages", 0), TP("crm-data", 0)
MEMBERS = [ROOMS, MESSAGES, CRM]


def groups(idle_s: float = 2.0, grace_s: float = 0.0) -> PartitionGroups:
    return PartitionGroups(["rooms", "messages", "crm-data"], idle_s, grace_s)


def names(released: list[tuple[TP, Rec]]) -> list[str]:
    return [record.name for _, record in released]


def release(g: PartitionGroups, lagging: set[TP] = frozenset(), paused: set[TP] = frozenset(),  # type: ignore[assignment]
            now: float = 0.0, wall_ms: int = 10**9, members: list[TP] = MEMBERS) -> list[tuple[TP, Rec]]:  # fmt: skip
    return list(g.release(members, lagging, paused, now, wall_ms))


def test_the_lowest_timestamp_goes_first_across_topics() -> None:
    g = groups()
    g.hold(MESSAGES, [Rec(0, 110, "agent message"), Rec(1, 130, "visitor message")])
    g.hold(ROOMS, [Rec(0, 100, "started"), Rec(1, 120, "taken"), Rec(2, 140, "closed")])
    assert names(release(g)) == ["started", "agent message", "taken", "visitor message", "closed"]


def test_equal_timestamps_put_rooms_before_messages_before_crm_data() -> None:
    g = groups()
    g.hold(CRM, [Rec(7, 100, "answer")])
    g.hold(MESSAGES, [Rec(3, 100, "message")])
    g.hold(ROOMS, [Rec(5, 100, "taken")])
    assert names(release(g)) == ["taken", "message", "answer"]


def test_one_partition_keeps_offset_order_even_with_timestamps_going_back() -> None:
    g = groups()
    g.hold(MESSAGES, [Rec(0, 200, "m0"), Rec(1, 100, "m1")])
    g.hold(ROOMS, [Rec(0, 150, "r0")])
    assert names(release(g)) == ["r0", "m0", "m1"]


def test_a_lagging_empty_input_is_waited_for_then_its_records_go_first() -> None:
    g = groups(idle_s=2.0)
    g.hold(MESSAGES, [Rec(0, 110, "message")])
    assert release(g, lagging={ROOMS}, now=10.0) == []
    assert g.wait_left(10.5) == 1.5
    g.hold(ROOMS, [Rec(0, 100, "taken")])  # its fetch arrived
    assert names(release(g, now=10.6)) == ["taken", "message"]
    assert g.wait_left(10.6) is None


def test_the_wait_for_a_lagging_input_ends_after_the_idle_time() -> None:
    g = groups(idle_s=2.0)
    g.hold(MESSAGES, [Rec(0, 110, "message")])
    assert release(g, lagging={ROOMS}, now=10.0) == []
    assert release(g, lagging={ROOMS}, now=11.9) == []
    assert names(release(g, lagging={ROOMS}, now=12.0)) == ["message"]
    assert g.went_on_without == 1


def test_a_caught_up_empty_input_does_not_hold_anything_back() -> None:
    g = groups()
    g.hold(MESSAGES, [Rec(0, 110, "message")])
    assert names(release(g, lagging=set())) == ["message"]


def test_a_paused_lagging_input_blocks_without_a_time_limit() -> None:
    g = groups(idle_s=2.0)
    g.hold(MESSAGES, [Rec(0, 110, "message")])
    assert release(g, lagging={ROOMS}, paused={ROOMS}, now=0.0) == []
    assert release(g, lagging={ROOMS}, paused={ROOMS}, now=3600.0) == []


def test_a_paused_input_whose_head_is_next_blocks_only_until_it_resumes() -> None:
    g = groups()
    g.hold(ROOMS, [Rec(0, 100, "taken")])
    g.hold(MESSAGES, [Rec(0, 110, "message")])
    assert release(g, paused={ROOMS}) == []
    assert names(release(g)) == ["taken", "message"]


def test_a_paused_input_with_a_later_head_lets_earlier_records_through() -> None:
    g = groups()
    g.hold(ROOMS, [Rec(0, 200, "closed")])
    g.hold(MESSAGES, [Rec(0, 110, "message")])
    assert names(release(g, paused={ROOMS})) == ["message"]


def test_a_young_head_waits_for_the_grace_unless_the_quiet_input_already_passed_it() -> None:
    g = groups(idle_s=2.0, grace_s=0.1)
    g.hold(MESSAGES, [Rec(0, 1_000, "message")])
    assert release(g, now=0.0, wall_ms=1_050) == []  # 50 ms old: a `taken` may still appear
    assert g.wait_left(0.0) == 0.05
    assert names(release(g, now=0.05, wall_ms=1_100)) == ["message"]
    g.hold(ROOMS, [Rec(0, 2_000, "closed")])
    g.hold(CRM, [Rec(0, 2_000, "answer")])
    release(g, wall_ms=3_000)
    g.hold(MESSAGES, [Rec(1, 1_990, "late message")])  # the others handed on 2_000 already
    assert names(release(g, now=1.0, wall_ms=2_000)) == ["late message"]


def test_groups_are_independent_per_partition_number() -> None:
    g = groups()
    rooms1, messages1 = TP("rooms", 1), TP("messages", 1)
    g.hold(MESSAGES, [Rec(0, 110, "p0 message")])
    g.hold(messages1, [Rec(0, 110, "p1 message")])
    released = release(g, lagging={ROOMS}, members=[ROOMS, MESSAGES, rooms1, messages1])
    assert names(released) == ["p1 message"]  # partition 0 waits for its rooms fetch


def test_forget_drops_what_a_seek_makes_stale() -> None:
    g = groups()
    g.hold(MESSAGES, [Rec(0, 110, "message")])
    g.hold(ROOMS, [Rec(0, 100, "taken")])
    g.forget([MESSAGES])
    assert names(release(g)) == ["taken"]
    assert g.held(MESSAGES) == 0


def test_proceed_false_leaves_the_rest_held() -> None:
    g = groups()
    g.hold(ROOMS, [Rec(0, 100, "a"), Rec(1, 101, "b")])
    allowed = iter([True, False])
    assert names(list(g.release(MEMBERS, set(), set(), 0.0, 10**9, lambda: next(allowed)))) == ["a"]
    assert g.held(ROOMS) == 1


timestamps = st.lists(st.integers(min_value=0, max_value=50), max_size=30)


@given(rooms=timestamps, messages=timestamps, crm=timestamps)
def test_merged_order_is_sorted_by_timestamp_and_keeps_each_partition_in_offset_order(
    rooms: list[int], messages: list[int], crm: list[int]
) -> None:
    # Timestamps rise within a partition, as one producer's create times do.
    inputs = {ROOMS: sorted(rooms), MESSAGES: sorted(messages), CRM: sorted(crm)}
    g = groups()
    for tp, stamps in inputs.items():
        g.hold(tp, [Rec(offset, ts) for offset, ts in enumerate(stamps)])
    released = release(g)
    assert len(released) == sum(map(len, inputs.values()))
    rank = {"rooms": 0, "messages": 1, "crm-data": 2}
    keys = [(record.timestamp, rank[tp.topic], record.offset) for tp, record in released]
    assert keys == sorted(keys)
    for tp in inputs:
        offsets = [record.offset for member, record in released if member == tp]
        assert offsets == sorted(offsets)


def test_a_young_head_its_reader_can_explain_goes_at_once() -> None:
    g = groups(idle_s=2.0, grace_s=1.0)
    asked: list[str] = []

    def may_need_earlier(tp: TP, record: Rec) -> bool:
        asked.append(record.name)
        return record.name == "agent message, no agent yet"

    g.may_need_earlier = may_need_earlier
    g.hold(MESSAGES, [Rec(0, 1_000, "visitor message")])
    assert names(release(g, now=0.0, wall_ms=1_010)) == ["visitor message"]  # no grace wait
    g.hold(MESSAGES, [Rec(1, 1_020, "agent message, no agent yet")])
    assert release(g, now=0.1, wall_ms=1_030) == []  # a `taken` may still be on its way
    assert g.wait_left(0.1) == pytest.approx(0.99)
    assert names(release(g, now=1.1, wall_ms=2_030)) == ["agent message, no agent yet"]
    assert asked == ["visitor message", "agent message, no agent yet"]
