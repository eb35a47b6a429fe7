"""Ordered delivery per room: a room's webhooks reach an endpoint in their webhook order.

Each (room, endpoint) with jobs not settled yet has a line: the webhook numbers
(`WebhookJob.sequence`) of its jobs read and not yet delivered or dead-lettered. Only the
lowest number may be attempted; the others wait. A job waiting never holds back another
room or another endpoint: a fresh job whose room's earlier job is only in flight waits for
that POST in memory; one whose earlier job went to the retries topic (a failed attempt, an
open or paused endpoint) goes there too, behind it, and its jobs partition goes on.

The lines survive a crash or a rebalance: whenever one of a line's jobs goes to the retries
topic, the whole line is written to a changelog-backed table (keyed by room and URL), and
written again as each of those jobs settles (deleted once empty). A new owner then knows
the order whatever order it reads the retries in (a job retried twice is behind its
successor in the topic). A job that only ever goes straight through writes nothing: it is
read again from its uncommitted offset after a crash, before anything behind it.

Jobs without a number (offline messages, jobs written before numbering) are not ordered.
Gaps are fine: a line orders the numbers it has, it never waits for a missing one. A number
the table keeps but no copy of its job comes back for (a line written before
`OMNIHOOKS_DELIVERY_ORDER` went to `none` and back, a write racing a rebalance) is dropped
once no copy has been seen for `stale_after_s`: every parked job is read again at least
once a hold lease, so a number unseen for two leases has no job behind it any more.

Pure of Kafka: the table is any `MutableMapping[bytes, bytes]`; waiting is asyncio's.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from msgspec.structs import replace

from streams.core.endpoints import endpoint_label
from topics.records import WebhookJob
from topics.state import decode_parked, encode_parked

log = logging.getLogger(__name__)


def line_key(job: WebhookJob) -> bytes | None:
    """The job's line in the table, or None for a job that is not ordered."""
    if job.room_id is None or job.sequence is None:
        return None
    # numbered per endpoint: a line is the room's jobs for one endpoint, wherever its URL
    return f"{job.room_id}\n{job.endpoint_id or job.url}".encode()


@dataclass
class _Line:
    partition: Any  # where its jobs are read (for forgetting it when that is revoked)
    numbers: set[int] = field(default_factory=set)
    fresh: Counter[int] = field(default_factory=Counter)  # copies read from the jobs topic
    held: Counter[int] = field(default_factory=Counter)  # copies in a task here, any topic
    seen_at: dict[int, float] = field(default_factory=dict)  # a copy last entered
    persisted: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def head(self) -> int:
        return min(self.numbers)

    def wake(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class RoomLines:
    def __init__(self, table: MutableMapping[bytes, bytes], stale_after_s: float = 600.0) -> None:
        self._table = table
        self.stale_after_s = stale_after_s
        self._lines: dict[bytes, _Line] = {}
        self.waiting = 0  # jobs waiting now for an earlier job of their room

    def enter(self, job: WebhookJob, fresh: bool, partition: Any) -> None:
        """A copy of `job` was read (from the jobs topic when `fresh`)."""
        key = line_key(job)
        if key is None:
            return
        line = self._lines.get(key)
        if line is None:
            line = self._lines[key] = _Line(partition)
            stored = self._table.get(key)
            if stored is not None:
                line.numbers.update(decode_parked(stored))
                line.persisted = True
                now = time.monotonic()
                line.seen_at.update((number, now) for number in line.numbers)
        assert job.sequence is not None
        line.numbers.add(job.sequence)
        line.held[job.sequence] += 1
        line.seen_at[job.sequence] = time.monotonic()
        if fresh:
            line.fresh[job.sequence] += 1

    async def wait_fresh(self, job: WebhookJob) -> bool:
        """For a job read from the jobs topic: wait while the one job ahead of it in its
        line is a fresh one in flight here. True: its turn; False: it goes to the retries
        topic behind its room's earlier jobs (`park`). One waiter per line at most, so a busy
        room's backlog never fills the jobs partition's window and stalls other rooms."""
        while True:
            line = self._line(job)
            if _its_turn(line, job):
                return True
            assert line is not None and job.sequence is not None
            if line.fresh[line.head] == 0 or _ahead(line, job.sequence) > 1:
                return False
            await self._wait(line, None)

    async def wait_turn(self, job: WebhookJob, lease_s: float) -> bool:
        """For a job read from the retries topic: wait until its room's earlier jobs are
        settled, at most `lease_s`. False: the lease ended first."""
        deadline = time.monotonic() + lease_s
        while True:
            line = self._line(job)
            if _its_turn(line, job):
                return True
            assert line is not None
            now = time.monotonic()
            stale_at = self._stale_at(line)
            if stale_at <= now:
                self._drop_head(line, job)
                continue
            left = deadline - now
            if left <= 0:
                return False
            await self._wait(line, min(left, stale_at - now))

    async def _wait(self, line: _Line, within_s: float | None) -> bool:
        changed = line.changed
        self.waiting += 1
        try:
            if within_s is None:
                await changed.wait()
                return True
            try:
                await asyncio.wait_for(changed.wait(), within_s)
            except TimeoutError:
                return False
            return True
        finally:
            self.waiting -= 1

    def _stale_at(self, line: _Line) -> float:
        head = line.head
        if line.held[head] > 0:
            return math.inf
        return line.seen_at.get(head, time.monotonic()) + self.stale_after_s

    def _drop_head(self, line: _Line, job: WebhookJob) -> None:
        head = line.head
        log.warning("room %s: webhook %d of its line for %s was not seen for %.0f s; "
                    "its later webhooks go on without it", job.room_id, head,
                    job.endpoint_id or endpoint_label(job.url), self.stale_after_s)  # fmt: skip
        self.leave(replace(job, sequence=head))

    def park(self, job: WebhookJob, fresh: bool) -> None:
        """This copy of `job` goes to the retries topic (a retry, or held): write its line,
        so whoever reads the retries next keeps the room's order."""
        line = self._line(job)
        if line is None:
            return
        key = line_key(job)
        assert key is not None and job.sequence is not None
        self._table[key] = encode_parked(list(line.numbers))
        line.persisted = True
        self._step_out(line, job.sequence, fresh)

    def leave(self, job: WebhookJob) -> None:
        """`job` is settled for good (delivered, dead-lettered, rejected): the next may go."""
        line = self._line(job)
        if line is None or job.sequence not in line.numbers:
            return
        key = line_key(job)
        assert key is not None and job.sequence is not None
        line.numbers.discard(job.sequence)
        line.fresh.pop(job.sequence, None)
        line.held.pop(job.sequence, None)
        line.seen_at.pop(job.sequence, None)
        if line.persisted:
            if line.numbers:
                self._table[key] = encode_parked(list(line.numbers))
            else:
                self._table.pop(key, None)
                line.persisted = False
        if not line.numbers:
            del self._lines[key]
        line.wake()

    def step_out(self, job: WebhookJob, fresh: bool) -> None:
        """This copy of `job` stops without settling it (shutting down, or a stale copy of
        a job whose newer copy is pending): the job stays in its line."""
        line = self._line(job)
        if line is not None and job.sequence is not None:
            self._step_out(line, job.sequence, fresh)

    def _step_out(self, line: _Line, number: int, fresh: bool) -> None:
        if line.held[number] > 0:
            line.held[number] -= 1
        if fresh and line.fresh[number] > 0:
            line.fresh[number] -= 1
            if line.fresh[number] == 0:
                del line.fresh[number]
                line.wake()  # a fresh job waiting on it now goes to the retries too

    def forget(self, revoked: Callable[[Any], bool]) -> int:
        """Drop the lines of revoked partitions (their new owner reads them from the table);
        returns how many."""
        gone = [key for key, line in self._lines.items() if revoked(line.partition)]
        for key in gone:
            self._lines.pop(key).wake()
        return len(gone)

    def erase_room(self, room_id: str) -> int:
        """An erased room's lines gone, here and in the table (its jobs still pending go on
        unordered); returns how many were in the table."""
        prefix = f"{room_id}\n".encode()
        for key in [k for k in self._lines if k.startswith(prefix)]:
            self._lines.pop(key).wake()
        stored = [key for key in self._table if key.startswith(prefix)]
        for key in stored:
            del self._table[key]
        return len(stored)

    def _line(self, job: WebhookJob) -> _Line | None:
        key = line_key(job)
        return None if key is None else self._lines.get(key)

    @property
    def lines(self) -> int:
        return len(self._lines)


def _its_turn(line: _Line | None, job: WebhookJob) -> bool:
    """No earlier job of the room is pending. A copy whose number left the line (another
    copy settled it) goes too: it finds the job settled and sends nothing."""
    return line is None or job.sequence not in line.numbers or job.sequence == line.head


def _ahead(line: _Line, number: int) -> int:
    return sum(1 for pending in line.numbers if pending < number)
