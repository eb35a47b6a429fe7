"""Concurrent work on a stream's events, acknowledged in offset order: the delivery agents'
sink (in the spirit of quix-streams' sinks: track, finish in offset order, backpressure).

Events of one partition may finish in any order (a POST to a slow CRM beside a fast one);
their offsets are acknowledged only up to the first one still in flight, so a committed
offset never passes an unfinished job. `track` waits while `limit` events are in flight,
which pauses the stream instead of buffering without bound.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streams.engine.acks import finish


@dataclass
class Entry:
    event: Any
    done: bool = False


class InOrderSink:
    def __init__(self, limit: int) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._queues: dict[Any, deque[Entry]] = {}

    async def track(self, event: Any) -> Entry:
        """Take a slot for `event` (waiting while the sink is full) and note its place."""
        await self._slots.acquire()
        entry = Entry(event)
        self._queues.setdefault(event.message.tp, deque()).append(entry)
        return entry

    def finish(self, entry: Entry) -> None:
        """The event is done: acknowledge it and every finished one after it, in order."""
        entry.done = True
        self._slots.release()
        queue = self._queues.get(entry.event.message.tp)
        if queue is None:
            return  # its partition was revoked meanwhile: its new owner commits it
        while queue and queue[0].done:
            finish(queue.popleft().event)

    def abandon(self, entry: Entry) -> None:
        """The work was cancelled (shutting down): free its slot, never acknowledge it, so
        neither it nor anything after it in its partition is committed."""
        self._slots.release()

    def forget(self, revoked: Callable[[Any], bool]) -> None:
        """Drop the places of revoked partitions: were one assigned again, its events come
        again from the committed offset, and a place nobody finishes would block it."""
        for tp in [tp for tp in self._queues if revoked(tp)]:
            del self._queues[tp]

    def let_go_all(self) -> list[Any]:
        """Forget every place, once no work is under way (a rebalance reads every partition
        again from its committed offset), and return the events never acknowledged: those
        abandoned, and the finished ones after them."""
        events = [entry.event for queue in self._queues.values() for entry in queue]
        self._queues.clear()
        return events

    @property
    def in_flight(self) -> int:
        return sum(len(queue) for queue in self._queues.values())
