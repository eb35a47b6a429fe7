"""The delivery sink: work finishes in any order, offsets are acknowledged in order."""

from __future__ import annotations

import asyncio

import pytest

from streams.engine.acks import is_finished
from streams.engine.sink import InOrderSink


class Message:
    def __init__(self, tp: str, offset: int) -> None:
        self.tp, self.offset = tp, offset


class Event:
    def __init__(self, acked: list[tuple[str, int]], tp: str, offset: int) -> None:
        self.message = Message(tp, offset)
        self._acked = acked

    def ack(self) -> None:
        self._acked.append((self.message.tp, self.message.offset))


async def test_out_of_order_finishes_are_acknowledged_in_offset_order_per_partition() -> None:
    acked: list[tuple[str, int]] = []
    sink = InOrderSink(limit=10)
    entries = [await sink.track(Event(acked, tp, n)) for tp in ("p0", "p1") for n in range(3)]
    p0 = entries[:3]
    sink.finish(p0[2])
    sink.finish(p0[1])
    sink.finish(entries[3])  # p1's first: independent of p0
    assert acked == [("p1", 0)]
    sink.finish(p0[0])
    assert acked == [("p1", 0), ("p0", 0), ("p0", 1), ("p0", 2)]
    assert all(is_finished(entry.event.message) for entry in [*p0, entries[3]])
    assert sink.in_flight == 2


async def test_an_abandoned_event_holds_back_everything_after_it() -> None:
    acked: list[tuple[str, int]] = []
    sink = InOrderSink(limit=10)
    first, second = [await sink.track(Event(acked, "p0", n)) for n in range(2)]
    sink.abandon(first)
    sink.finish(second)
    assert acked == []


async def test_track_waits_while_the_sink_is_full() -> None:
    sink = InOrderSink(limit=2)
    acked: list[tuple[str, int]] = []
    first = await sink.track(Event(acked, "p0", 0))
    await sink.track(Event(acked, "p0", 1))
    third = asyncio.ensure_future(sink.track(Event(acked, "p0", 2)))
    await asyncio.sleep(0)
    assert not third.done()
    sink.finish(first)
    await asyncio.wait_for(third, 1)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(sink.track(Event(acked, "p0", 3)), 0.05)


async def test_a_revoked_partitions_places_are_forgotten_and_it_starts_clean_again() -> None:
    """A worker losing a partition drops its places: a held job never finished there must
    not block the partition should it come back (its events then come again)."""
    acked: list[tuple[str, int]] = []
    sink = InOrderSink(limit=10)
    held = await sink.track(Event(acked, "p0", 0))
    in_flight = await sink.track(Event(acked, "p0", 1))
    other = await sink.track(Event(acked, "p1", 0))
    sink.forget(lambda tp: tp == "p0")
    sink.abandon(held)  # its waiting task was cancelled
    sink.finish(in_flight)  # a POST under way when the partition went: nothing to ack
    sink.finish(other)
    assert acked == [("p1", 0)]
    again = await sink.track(Event(acked, "p0", 0))  # assigned back, read again
    sink.finish(again)
    assert acked == [("p1", 0), ("p0", 0)]
    assert sink.in_flight == 0


async def test_letting_go_forgets_every_place_and_returns_what_was_never_acknowledged() -> None:
    """Before a rebalance: the waiting job was let go (abandoned), the POST behind it finished
    but could not be acknowledged past it; both are read again from the committed offset."""
    acked: list[tuple[str, int]] = []
    sink = InOrderSink(limit=10)
    done, waiting, behind = [await sink.track(Event(acked, "p0", n)) for n in range(3)]
    other = await sink.track(Event(acked, "p1", 0))
    sink.finish(done)
    sink.abandon(waiting)
    sink.finish(behind)
    sink.finish(other)
    assert acked == [("p0", 0), ("p1", 0)]
    let_go = sink.let_go_all()
    assert [(e.message.tp, e.message.offset) for e in let_go] == [("p0", 1), ("p0", 2)]
    assert sink.in_flight == 0
    again = await sink.track(Event(acked, "p0", 1))  # read again after the rebalance
    sink.finish(again)
    assert acked[-1] == ("p0", 1)
