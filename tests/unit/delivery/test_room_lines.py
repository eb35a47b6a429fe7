"""Ordered delivery per room (streams/delivery/room_lines.py): who may go, who waits, what survives."""

from __future__ import annotations

import asyncio

import pytest

from streams.delivery.room_lines import RoomLines
from topics import codec
from topics.records import WebhookJob

URL = "http://crm.test/hook"


def job(number: int | None, room: str | None = "room-1", url: str = URL) -> WebhookJob:
    return WebhookJob(
        delivery_id=f"{room}-{number}", type="Message", room_id=room, url=url, body={},
        created_at="2026-11-26T00:00:00.000Z", sequence=number,
    )  # fmt: skip


class Table(dict[bytes, bytes]):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.writes += 1
        super().__setitem__(key, value)

    def __delitem__(self, key: bytes) -> None:
        self.writes += 1
        super().__delitem__(key)


async def settles_soon(waiting: asyncio.Future[bool]) -> bool:
    return await asyncio.wait_for(waiting, 1.0)


def still_waiting(waiting: asyncio.Future[bool]) -> bool:
    return not waiting.done()


async def test_a_fresh_job_waits_for_its_rooms_earlier_one_in_flight_then_goes() -> None:
    table = Table()
    lines = RoomLines(table)
    first, second = job(1), job(2)
    lines.enter(first, fresh=True, partition=0)
    lines.enter(second, fresh=True, partition=0)
    assert await lines.wait_fresh(first)
    waiting = asyncio.ensure_future(lines.wait_fresh(second))
    await asyncio.sleep(0)
    assert still_waiting(waiting) and lines.waiting == 1
    lines.leave(first)  # delivered
    assert await settles_soon(waiting) is True
    lines.leave(second)
    assert table.writes == 0 and lines.lines == 0  # straight through: nothing written


async def test_only_the_next_job_of_a_room_waits_in_memory_the_rest_go_to_retries() -> None:
    lines = RoomLines(Table())
    for number in (1, 2, 3):
        lines.enter(job(number), fresh=True, partition=0)
    second = asyncio.ensure_future(lines.wait_fresh(job(2)))
    assert await lines.wait_fresh(job(3)) is False  # two ahead: parked, its partition goes on
    assert still_waiting(second)
    lines.leave(job(1))
    assert await settles_soon(second)


async def test_when_the_earlier_job_goes_to_retries_the_later_one_follows_it_there() -> None:
    table = Table()
    lines = RoomLines(table)
    first, second = job(1), job(2)
    lines.enter(first, fresh=True, partition=0)
    lines.enter(second, fresh=True, partition=0)
    waiting = asyncio.ensure_future(lines.wait_fresh(second))
    await asyncio.sleep(0)
    lines.park(first, fresh=True)  # its attempt failed: a retry
    assert await settles_soon(waiting) is False  # park it behind
    assert codec.loads(table[b"room-1\n" + URL.encode()]) == [1, 2]


async def test_after_a_restart_the_table_keeps_the_order_whatever_order_retries_are_read() -> None:
    table = Table()
    before = RoomLines(table)
    for number in (1, 2, 3):
        before.enter(job(number), fresh=True, partition=0)
    before.park(job(1), fresh=True)
    before.park(job(2), fresh=True)
    before.park(job(3), fresh=True)
    # A new worker reads the retries topic: job 3, then 2, then 1 (1 was retried again last).
    lines = RoomLines(table)
    lines.enter(job(3), fresh=False, partition=0)
    third = asyncio.ensure_future(lines.wait_turn(job(3), 5.0))
    lines.enter(job(2), fresh=False, partition=0)
    second = asyncio.ensure_future(lines.wait_turn(job(2), 5.0))
    await asyncio.sleep(0.01)
    assert still_waiting(third) and still_waiting(second)
    lines.enter(job(1), fresh=False, partition=0)
    assert await lines.wait_turn(job(1), 5.0)
    lines.leave(job(1))
    assert await settles_soon(second) and still_waiting(third)
    lines.leave(job(2))
    assert await settles_soon(third)
    lines.leave(job(3))
    assert table == {}  # the empty line is deleted


async def test_other_rooms_other_endpoints_and_unnumbered_jobs_never_wait() -> None:
    lines = RoomLines(Table())
    lines.enter(job(1), fresh=True, partition=0)
    lines.park(job(1), fresh=True)  # room-1's first job is failing
    for other in (job(1, room="room-2"), job(2, url="http://other.test/"), job(None),
                  job(None, room=None)):  # fmt: skip
        lines.enter(other, fresh=True, partition=0)
        assert await settles_soon(asyncio.ensure_future(lines.wait_fresh(other)))
    lines.enter(job(2), fresh=True, partition=0)
    assert await lines.wait_fresh(job(2)) is False


async def test_a_gap_is_not_waited_for() -> None:
    lines = RoomLines(Table())
    lines.enter(job(3), fresh=True, partition=0)  # 1 and 2 were never sent (rejected)
    assert await lines.wait_fresh(job(3))
    lines.enter(job(5), fresh=True, partition=0)
    lines.leave(job(3))
    assert await lines.wait_fresh(job(5))


async def test_a_stale_copy_of_a_settled_job_goes_and_a_wait_ends_at_its_lease() -> None:
    lines = RoomLines(Table())
    for number in (1, 2):
        lines.enter(job(number), fresh=False, partition=0)
    started = asyncio.get_running_loop().time()
    assert await lines.wait_turn(job(2), 0.2) is False
    assert asyncio.get_running_loop().time() - started == pytest.approx(0.2, abs=0.15)
    lines.leave(job(1))
    lines.leave(job(1))  # the stale copy, found settled: nothing more
    assert await lines.wait_turn(job(2), 0.2)


async def test_revoked_lines_are_forgotten_and_read_again_from_the_table() -> None:
    table = Table()
    lines = RoomLines(table)
    lines.enter(job(1), fresh=True, partition="p0")
    lines.park(job(1), fresh=True)
    lines.enter(job(1, room="room-2"), fresh=True, partition="p1")
    assert lines.forget(lambda tp: tp == "p0") == 1 and lines.lines == 1
    lines.enter(job(2), fresh=False, partition="p0")  # assigned again: the table says 1 waits
    assert await lines.wait_turn(job(2), 0.05) is False


async def test_a_number_no_copy_comes_back_for_is_dropped_after_its_time() -> None:
    table = Table()
    table[b"room-1\n" + URL.encode()] = codec.dumps([1, 2])  # 1's job is gone for good
    lines = RoomLines(table, stale_after_s=0.2)
    lines.enter(job(2), fresh=False, partition=0)
    assert await lines.wait_turn(job(2), 5.0)  # waited ~0.2 s for 1, then went on
    assert codec.loads(table[b"room-1\n" + URL.encode()]) == [2]
    held = RoomLines(Table(), stale_after_s=0.2)
    for number in (1, 2):
        held.enter(job(number), fresh=False, partition=0)  # 1 is held by a task: never stale
    assert await held.wait_turn(job(2), 0.5) is False
