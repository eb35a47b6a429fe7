"""The merge rule for co-partitioned inputs: Kafka Streams' partition-group semantics.

Kafka orders records only within one partition of one topic. A room's records arrive on
`rooms`, `messages` and `crm-data`, partition p of each; a consumer fetching a backlog gets
them in whatever batches the broker returns, so a message can be fetched before the `taken`
the chat stack wrote a second earlier. The fetched records are held here, per partition, and
released for each partition number ("group") in record-timestamp order:

- a group releases the head with the lowest (timestamp, topic rank, offset); the rank is the
  order the topics were given in (rooms before messages before crm-data), so equal timestamps
  resolve the same way on every worker and every replay;
- while a member of the group has nothing held but the broker reports records for it that
  were not fetched yet (it is behind), the group waits for that fetch, at most `idle_s`
  (Kafka Streams' `max.task.idle.ms`, KIP-353/KIP-695), then goes on without it;
- while a member has nothing held and is caught up, a record written to it just before the
  head (by the same producer, a millisecond earlier) may still be on its way: two partitions'
  appends become visible in either order. If the head may depend on such a record
  (`may_need_earlier`: the caller knows what its records need), it waits until it is
  `grace_s` old (by its timestamp and this machine's clock) unless that member already
  handed on a record as recent as the head; this wait, too, ends after `idle_s`. A head
  that cannot depend on one goes at once: a live record costs no wait;
- a member that is paused (flow control) and behind blocks its group without a time limit:
  its records exist and will come, and going on without them would break the order.

Pure: records are anything with `offset` and `timestamp` (milliseconds); partitions anything
with `topic` and `partition`. No Kafka import, so the rule is unit tested on its own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class Partition(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...


class Record(Protocol):
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int | None: ...


@dataclass
class PartitionGroups:
    """Holds fetched records and hands them on in the order the merge rule allows."""

    topics: Sequence[str]  # the co-partitioned topics, in tie-break order
    idle_s: float
    grace_s: float
    # Whether a head record may depend on a record of another input still in flight (what
    # the grace waits for); by default every one may.
    may_need_earlier: Callable[[Any, Any], bool] = lambda _tp, _record: True
    _rank: dict[str, int] = field(init=False)
    _held: dict[Any, deque[Any]] = field(init=False, default_factory=dict)
    _last_ts: dict[Any, int] = field(init=False, default_factory=dict)  # newest handed on
    _waiting_since: dict[int, float] = field(init=False, default_factory=dict)
    _wake_at: dict[int, float] = field(init=False, default_factory=dict)
    went_on_without: int = 0  # times a group stopped waiting after idle_s (order not assured)

    def __post_init__(self) -> None:
        self._rank = {topic: rank for rank, topic in enumerate(self.topics)}

    def is_grouped(self, tp: Partition) -> bool:
        return tp.topic in self._rank

    def hold(self, tp: Partition, records: Iterable[Record]) -> None:
        self._held.setdefault(tp, deque()).extend(records)

    def held(self, tp: Partition) -> int:
        queue = self._held.get(tp)
        return len(queue) if queue else 0

    def held_partitions(self) -> list[Any]:
        return [tp for tp, queue in self._held.items() if queue]

    def forget(self, tps: Iterable[Partition] | None = None) -> None:
        """Drop what is held (all of it, or for `tps`): after a seek or a new generation the
        consumer reads those records again from the new position."""
        if tps is None:
            self._held.clear()
            self._last_ts.clear()
            self._waiting_since.clear()
            self._wake_at.clear()
            return
        for tp in tps:
            self._held.pop(tp, None)
            self._last_ts.pop(tp, None)
            self._waiting_since.pop(tp.partition, None)
            self._wake_at.pop(tp.partition, None)

    def wait_left(self, now: float) -> float | None:
        """Seconds until the earliest waiting group should be looked at again."""
        if not self._wake_at:
            return None
        return max(0.0, min(self._wake_at.values()) - now)

    def release(
        self,
        members: Collection[Partition],
        lagging: Collection[Partition],
        paused: Collection[Partition],
        now: float,
        wall_ms: int,
        proceed: Callable[[], bool] = lambda: True,
    ) -> Iterator[tuple[Any, Any]]:
        """Yield (partition, record) in merge order for the grouped `members` (the assigned
        partitions of the grouped topics). `lagging`: members the broker reports behind;
        `paused`: members not being fetched; `now` monotonic seconds, `wall_ms` the clock
        record timestamps are compared with. `proceed` is asked before each record leaves
        the hold: when it says no, the rest stay held."""
        groups: dict[int, list[Any]] = {}
        for tp in members:
            groups.setdefault(tp.partition, []).append(tp)
        for number, group in groups.items():
            while proceed():
                head = self._next_head(number, group, lagging, paused, now, wall_ms)
                if head is None:
                    break
                record = self._held[head].popleft()
                if record.timestamp is not None:
                    self._last_ts[head] = max(self._last_ts.get(head, -1), record.timestamp)
                yield head, record

    def _next_head(
        self,
        number: int,
        group: list[Any],
        lagging: Collection[Partition],
        paused: Collection[Partition],
        now: float,
        wall_ms: int,
    ) -> Any | None:
        heads: list[tuple[tuple[int, int, int], Any]] = []
        behind = False  # a member with nothing held has records still to fetch
        quiet: list[Any] = []  # members with nothing held and nothing to fetch
        for tp in group:
            queue = self._held.get(tp)
            if queue:
                heads.append((self._key(tp, queue[0]), tp))
            elif tp in lagging:
                if tp in paused:
                    self._wake_at.pop(number, None)
                    return None  # its records exist and will be fetched once it resumes
                behind = True
            else:
                quiet.append(tp)
        if not heads:
            self._stop_waiting(number)
            return None
        (timestamp, _, _), best = min(heads, key=lambda head: head[0])
        if best in paused:
            self._stop_waiting(number)
            return None  # the next record in order is not to be handed on yet
        young = timestamp + self.grace_s * 1000 - wall_ms  # ms until the head is grace_s old
        unsure = (
            young > 0
            and any(self._last_ts.get(tp, -1) < timestamp for tp in quiet)
            and self.may_need_earlier(best, self._held[best][0])
        )
        if behind or unsure:
            deadline = self._waiting_since.setdefault(number, now) + self.idle_s
            if now < deadline:
                self._wake_at[number] = deadline if behind else min(deadline, now + young / 1000)
                return None
            # Waited long enough: go on without the member (enforced processing).
            if self._waiting_since.get(number) is not None:
                self.went_on_without += 1
        self._stop_waiting(number)
        return best

    def _stop_waiting(self, number: int) -> None:
        self._waiting_since.pop(number, None)
        self._wake_at.pop(number, None)

    def _key(self, tp: Partition, record: Record) -> tuple[int, int, int]:
        timestamp = record.timestamp if record.timestamp is not None else -1
        return timestamp, self._rank[tp.topic], record.offset
