"""The worker's consumer: Faust's aiokafka consumer with the order and acknowledgement rules
omnihooks promises, and a short fetch wait.

What it changes in Faust (faust-streaming 0.15.3, pinned; `tests/unit/engine/test_engine_hooks.py`
fails when a hook below moves):

- `getmany`: every fetched record is held until it can be handed on, never dropped. Records
  of the co-partitioned inputs leave in `PartitionGroups` order (record timestamp across
  topics, per partition number); a rebalance or a seek drops what it held for the partitions
  concerned, since those are read again from their new position. Faust's own `getmany` drops
  the rest of a batch when the flow stops and relies on a later seek to read it again.
- `ack`: only an event an agent finished (`streams.engine.acks.finish`) moves a committed
  offset. Faust's pure-Python stream iterator acknowledges events it skips (a stale
  generation: fetched before a rebalance, queued after it), `noack()` or not; when the
  partition came back to the same worker that acknowledgement is committed with the new
  generation's, past a record no agent saw (`tests/integration/test_honest_acks.py` shows
  stock Faust committing it). The compiled (Cython) iterator skips without acknowledging,
  and acknowledges auto-acked events inline, past `Consumer.ack`: every omnihooks agent
  therefore reads with `noack()` and acknowledges through `finish`, so each acknowledgement
  passes here whichever iterator runs.
- pauses: a partition Faust pauses (an active table's changelog once recovered, every
  partition during a rebalance) is paused in aiokafka too (`mirror_pauses`). Faust only
  stops asking for it, and the batch aiokafka fetched and nobody takes holds back every
  fetch to that broker for 0.1 s. A partition whose stream buffer is under pressure keeps its
  held records and is not fetched until the buffer drains (Faust hands them on and then
  waits on the full buffer, holding back every partition).
- `wait_empty`: before Faust waits for every event handed on (each rebalance, and at stop),
  the agents let go of what is only waiting (`let_go_before_waiting`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
)
from typing import Any

from aiokafka.structs import TopicPartition
from faust.transport.drivers import aiokafka as driver

from streams.engine.acks import is_finished
from streams.engine.commits import committable
from streams.engine.membership import leave_when_closed
from streams.engine.partition_groups import PartitionGroups

log = logging.getLogger(__name__)

# Faust hard-codes fetch_max_wait_ms=1500. aiokafka leaves a partition whose records are
# being processed out of the fetch already in flight, so new records there can wait for that
# fetch to time out, and the delivery p99 showed that wait even at a modest rate. A shorter
# wait costs only a few more idle fetch requests.
FETCH_MAX_WAIT_MS = 100

# A grouped partition holding this many records is not fetched until its group moves on:
# a partition far ahead of its lagging sibling must not fill the worker's memory.
HOLD_LIMIT = 5000

# A fetch holds the lock seeks wait for: keep it short (Faust asks for up to 1 s).
FETCH_TIMEOUT_S = 0.25
POSITION_TIMEOUT_S = 10.0

PARTITION_GROUPS_ATTR = "omnihooks_partition_groups"
LET_GO_ATTR = "omnihooks_let_go"

# What an agent gives up when Faust is about to wait for every event it handed on: the
# events it let go unfinished (to be read again from the committed offsets).
LetGo = Callable[[], Awaitable[Iterable[Any]]]


def let_go_before_waiting(app: Any, let_go: LetGo) -> None:
    """Call `let_go` whenever Faust waits for every event handed on to its agents, at each
    rebalance and at stop (`stream_wait_empty`). Faust waits with no limit: an agent holding
    an event for minutes (a job held for an open endpoint) would hold the rebalance, and the
    whole group with it, as long. What `let_go` returns is not waited for; it is never
    committed, and after the rebalance every partition is read again from its committed
    offset."""
    hooks: list[LetGo] = getattr(app, LET_GO_ATTR, [])
    hooks.append(let_go)
    setattr(app, LET_GO_ATTR, hooks)


def order_by_timestamp(
    app: Any,
    topics: list[str],
    idle_s: float,
    grace_s: float,
    may_need_earlier: Callable[[Any, Any], bool] | None = None,
) -> None:
    """Make the worker's consumer merge these co-partitioned topics by record timestamp;
    `may_need_earlier(tp, record)` says which live records wait for the grace (default: all)."""
    groups = PartitionGroups(topics, idle_s, grace_s)
    if may_need_earlier is not None:
        groups.may_need_earlier = may_need_earlier
    setattr(app, PARTITION_GROUPS_ATTR, groups)


class ShortFetchConsumerThread(driver.AIOKafkaConsumerThread):
    # Faust's pause_partitions only stops asking for a partition's records: aiokafka goes on
    # fetching it. The batch nobody takes (an active table's changelog, which receives the
    # worker's own writes) then holds back every fetch to that broker for aiokafka's
    # prefetch backoff, 0.1 s: the first jobs after each settled-table write waited out that
    # backoff, and the delivery p99 with them. Partitions Faust pauses are paused in aiokafka
    # as well (on its thread, before each fetch).
    paused_by_faust: frozenset[Any] = frozenset()

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts
        return consumer

    async def on_thread_stop(self) -> None:
        # A static member stopped on purpose hands its partitions over now, not after a
        # session timeout (streams/engine/membership.py).
        if self._consumer is not None:
            leave_when_closed(self._consumer)
        await super().on_thread_stop()

    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: Any,
        timeout: float | None = None,  # noqa: ASYNC109
        max_records: int | None = None,
    ) -> Any:
        try:
            mirror_pauses(consumer, self.paused_by_faust)
        except Exception:
            # Only a fetch optimisation (Faust's books still decide what is handed on): a
            # rebalance changing the assignment under it must not stop the fetching.
            log.warning("could not mirror Faust's paused partitions in aiokafka", exc_info=True)
        return await super()._fetch_records(
            consumer, active_partitions, timeout=timeout, max_records=max_records
        )


def mirror_pauses(consumer: Any, wanted: frozenset[Any]) -> None:
    """Pause in aiokafka exactly the assigned partitions Faust has paused.

    A batch fetched but not taken is dropped: aiokafka's position moves only when records are
    taken, so after the resume they are fetched again from there (and recovery seeks anyway).
    """
    assigned, paused = consumer.assignment(), consumer.paused()
    pause = [TopicPartition(tp.topic, tp.partition) for tp in wanted
             if tp in assigned and tp not in paused]  # fmt: skip
    if pause:
        consumer.pause(*pause)
        fetcher = consumer._fetcher
        dropped = [tp for tp in pause if fetcher._records.pop(tp, None) is not None]
        if dropped:
            fetcher._notify(fetcher._wait_consume_future)
    resume = [tp for tp in paused if tp not in wanted]
    if resume:
        consumer.resume(*resume)


class OrderedConsumer(driver.Consumer):
    """Faust's consumer that holds what it fetched, merges grouped inputs, acks honestly."""

    _plain: dict[Any, deque[Any]]
    _held_generation: int = -1
    _fetch_lock: asyncio.Lock  # a seek waits for the fetch in flight to be held first
    _first_handed_on: dict[Any, int]  # per partition, this generation / since its last seek
    refused_acks: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._plain = {}
        self._fetch_lock = asyncio.Lock()
        self._first_handed_on = {}

    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return ShortFetchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    @property
    def partition_groups(self) -> PartitionGroups | None:
        groups: PartitionGroups | None = getattr(self.app, PARTITION_GROUPS_ATTR, None)
        return groups

    # -- honest acknowledgements -------------------------------------------------------------

    async def wait_empty(self) -> None:
        for let_go in getattr(self.app, LET_GO_ATTR, ()):
            for event in await let_go():
                self._unacked_messages.discard(event.message)
        await super().wait_empty()

    def ack(self, message: Any) -> bool:
        if is_finished(message) or not self.app.topics.acks_enabled_for(message.topic):
            return bool(super().ack(message))
        # Skipped by Faust's stream, never seen by an agent: its offset must not be committed.
        # Not waited for either (wait_empty), since no agent will ever finish it.
        self._unacked_messages.discard(message)
        self.refused_acks += 1
        log.debug("not committing %s[%d]@%d: skipped, not processed",
                  message.topic, message.partition, message.offset)  # fmt: skip
        return False

    # -- commits only through finished records --------------------------------------------------

    def _new_offset(self, tp: Any) -> int | None:
        acked = self._acked[tp]
        if not acked:
            return None
        base = self._committed_offset[tp]
        if base is None:
            base = self._first_handed_on.get(tp)
        gaps = self._gap.get(tp)
        known_gaps = [(gap.begin, gap.end) for gap in gaps] if gaps else []
        offset = committable(base, acked, known_gaps)
        if offset is None:
            return None
        self._acked[tp] = [n for n in acked if n >= offset]
        self._acked_index[tp].difference_update(range(base or 0, offset))
        if gaps:
            gaps.chop(0, offset)
        return offset

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        # Faust records offset_from..offset_to inclusive, the record being handed on (at
        # offset_to) too, so its gap counted it as finished before any agent saw it.
        await super()._add_gap(tp, offset_from, offset_to - 1)

    # -- seeks make held records stale ----------------------------------------------------------

    def _forget(self, tps: Collection[Any] | None) -> None:
        groups = self.partition_groups
        if tps is None:
            self._plain.clear()
            self._first_handed_on.clear()
            if groups is not None:
                groups.forget()
            return
        for tp in tps:
            self._plain.pop(tp, None)
            self._first_handed_on.pop(tp, None)
        if groups is not None:
            groups.forget(tps)

    # A seek takes the fetch lock: records fetched before it are held (then forgotten here),
    # never mistaken for records read from the new position.

    async def seek_to_committed(self) -> Mapping[Any, int]:
        async with self._fetch_lock:
            offsets = await super().seek_to_committed()
            # aiokafka moves only partitions with a committed offset above 0; the others keep
            # their position, and what was fetched from it is still owed (forgetting it lost
            # a new worker's first records of every partition its predecessor never committed).
            self._forget([tp for tp, offset in offsets.items() if offset and offset > 0])
            return offsets

    async def _seek(self, partition: Any, offset: int) -> None:
        async with self._fetch_lock:
            await super()._seek(partition, offset)
            self._forget([partition])

    async def seek_wait(self, partitions: Mapping[Any, int]) -> None:
        async with self._fetch_lock:
            await super().seek_wait(partitions)
            self._forget(list(partitions))

    # -- fetching ------------------------------------------------------------------------------

    async def _getmany(self, active_partitions: set[Any] | None, timeout: float) -> Any:  # noqa: ASYNC109
        groups = self.partition_groups
        if active_partitions:
            # Not fetched while held back: a partition far ahead of its group, or one whose
            # stream buffer is under pressure (a rebalance makes that one active again
            # before its buffer has drained, and its records would pile up here).
            held_back = set(self._buffered_partitions)
            if groups is not None:
                held_back |= {tp for tp in groups.held_partitions()
                              if groups.held(tp) >= HOLD_LIMIT}  # fmt: skip
            if held_back & active_partitions:
                active_partitions = active_partitions - held_back
                if not active_partitions:
                    # aiokafka reads an empty set as "every partition"
                    await asyncio.sleep(min(timeout, 0.05))
                    return {}
        thread: Any = self._thread
        # A buffered partition is not asked for either: aiokafka would go on fetching it, and
        # its batch nobody takes would hold back every fetch to that broker (see above).
        thread.paused_by_faust = frozenset(self._paused_partitions | self._buffered_partitions)
        return await super()._getmany(active_partitions, timeout)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:  # noqa: ASYNC109
        groups = self.partition_groups
        if groups is not None:
            left = groups.wait_left(time.monotonic())
            if left is not None:
                timeout = min(timeout, max(left, 0.01))
        active = await self._fetch_and_hold(min(timeout, FETCH_TIMEOUT_S))
        if self.should_stop or not self.flow_active:
            return  # held until the flow resumes, or dropped by the rebalance that stopped it
        generation = self.app.consumer_generation_id

        def proceed() -> bool:
            return self.flow_active and self.app.consumer_generation_id == generation

        def streams_proceed() -> bool:
            # Faust clears its channel queues when the app's flow control resumes after a
            # rebalance: a stream record handed on before then would be dropped unseen.
            return proceed() and self.app.flow_control.is_active()

        releasable = active  # buffered partitions wait in `_release_plain`
        for tp, record in self._release_plain(releasable, proceed, streams_proceed):
            yield tp, self._handed_on(tp, record)
        if groups is None or not streams_proceed():
            return
        members = [tp for tp in self.assignment() if groups.is_grouped(tp)]
        paused = set() if active is None else {tp for tp in members if tp not in active}
        lagging = await self._lagging(members, groups)
        now, wall_ms = time.monotonic(), int(time.time() * 1000)
        went_on_without = groups.went_on_without
        for tp, record in groups.release(members, lagging, paused, now, wall_ms, streams_proceed):
            yield tp, self._handed_on(tp, record)
        if groups.went_on_without > went_on_without:
            log.warning(
                "went on without an input that stayed behind or quiet for %.1f s "
                "(OMNIHOOKS_ORDER_IDLE_MS): a room's records may apply out of order",
                groups.idle_s,
            )

    async def _fetch_and_hold(self, timeout: float) -> set[Any] | None:  # noqa: ASYNC109
        """Faust's `_wait_next_records`, with the fetched records held under the fetch lock."""
        if not self.flow_active:
            await self.wait(self.can_resume_flow)  # type: ignore[arg-type]
        self.not_waiting_next_records.set()
        active: set[Any] | None = None if self.app.client_only else self._get_active_partitions()
        if not (self.app.client_only or active):
            await self.sleep(min(timeout, 0.1))
            return active
        async with self._fetch_lock:
            generation = self.app.consumer_generation_id
            if generation != self._held_generation:
                # A rebalance: aiokafka reads every assigned partition again from its
                # committed offset (or the recovery's seek), so nothing held is still owed.
                self._forget(None)
                self._held_generation = generation
            records = await self._getmany(active, timeout)
            if records and self.app.consumer_generation_id != generation:
                await self._rewind_if_owed(records)
            elif records:
                self._hold(records)
        return active

    async def _rewind_if_owed(self, records: Mapping[Any, list[Any]]) -> None:
        """A fetch that straddled a rebalance: its records are dropped. Those of the old
        assignment are read again from the new positions; but where the fetch already read
        from a new position, that position has moved past them, so it is set back."""
        assigned = self.assignment()
        for tp, batch in records.items():
            if not batch or tp not in assigned:
                continue
            try:
                position = await asyncio.wait_for(self.position(tp), POSITION_TIMEOUT_S)
            except Exception:
                log.warning("no position for %s after a rebalance", tp, exc_info=True)
                continue
            if position is not None and position > batch[0].offset:
                log.info("re-reading %s from %d: fetched across a rebalance", tp, batch[0].offset)
                await super()._seek(tp, batch[0].offset)
                self._read_offset[tp] = batch[0].offset or None  # as Consumer.seek does

    def _hold(self, records: Mapping[Any, list[Any]]) -> None:
        groups = self.partition_groups
        for tp, batch in records.items():
            if not batch:
                continue
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            if groups is not None and groups.is_grouped(tp):
                groups.hold(tp, batch)
            else:
                self._plain.setdefault(tp, deque()).extend(batch)

    def _handed_on(self, tp: Any, record: Any) -> Any:
        self._first_handed_on.setdefault(tp, record.offset)
        return self._to_message(tp, record)

    def _release_plain(
        self, releasable: set[Any] | None, proceed: Any, streams_proceed: Any
    ) -> Iterator[tuple[Any, Any]]:
        # Round-robin across partitions, as Faust's scheduler does, so one partition's large
        # batch does not starve the others. Changelog records go on while a rebalance's
        # recovery reads them; stream records wait for the app's flow control.
        #
        # A partition whose stream buffer came under pressure (Faust's "buffered" partitions,
        # noted as records are handed on) keeps its held records here until the buffer
        # drains. Faust hands them on anyway, having nowhere to keep them: the buffer then
        # fills, and Faust's drain waits on it, holding back every other partition's records
        # until that stream takes one. The retry agent's buffer fills so with jobs held for
        # an open endpoint, and healthy jobs stalled behind it (docs/history.md).
        is_changelog = self._is_changelog_tp
        buffered = self._buffered_partitions

        def under_pressure(tp: Any) -> bool:  # asked per record: it can start mid-round
            return tp in buffered and not is_changelog(tp)

        while True:
            streams_ok = streams_proceed()
            ready = [
                tp
                for tp, queue in self._plain.items()
                if queue
                and (releasable is None or tp in releasable)
                and (streams_ok or is_changelog(tp))
                and not under_pressure(tp)
            ]
            if not ready:
                return
            for tp in ready:
                may_go = proceed if is_changelog(tp) else streams_proceed
                if not may_go():
                    return
                queue = self._plain.get(tp)
                if queue and not under_pressure(tp):
                    yield tp, queue.popleft()

    async def _lagging(self, members: list[Any], groups: PartitionGroups) -> set[Any]:
        """Members whose end offset on the broker is past the consumer's position.

        Every member, not only the empty ones: one that holds records now may run out while
        its group is being released. The end offsets come from the broker now (ListOffsets):
        aiokafka's highwater is only as fresh as the last fetch response that carried the
        partition, and a fetch to a node waits while another partition's records are still
        buffered, so it said "caught up" for records already written.
        """
        if not groups.held_partitions():
            return set()
        try:
            ends = await self.highwaters(*members)
            positions = {tp: await self.position(tp) for tp in members}
        except Exception:
            # Cannot tell: wait as for a lagging input (bounded by the idle wait).
            log.warning("could not read end offsets of %s", members, exc_info=True)
            return set(members)
        lagging = set()
        for tp in members:
            position, end = positions.get(tp), ends.get(tp)
            if position is None or end is None or position < end:
                lagging.add(tp)
        return lagging
