"""Faust's aiokafka transport with an idempotent, acks=all producer and a short fetch wait.

Faust turns idempotence on only inside transactions. Every job, dead letter and changelog
record we write should survive a broker restart without being lost (acks=all) or doubled by
the producer's own retries (idempotence), so the worker's broker URLs use this transport
(scheme `omnihooks://`, registered as a `faust.transports` entry point).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from typing import Any

from faust.transport.drivers import aiokafka as driver

log = logging.getLogger(__name__)


class IdempotentProducer(driver.Producer):
    def _settings_extra(self) -> Mapping[str, Any]:
        return {"acks": "all", "enable_idempotence": True}


# Faust hard-codes fetch_max_wait_ms=1500. aiokafka leaves a partition whose records are
# being processed out of the fetch already in flight, so new records there can wait for that
# fetch to time out: the benchmark saw p99 delivery latency near 0.5 s at 250 jobs/s. A
# shorter wait costs only a few more idle fetch requests.
FETCH_MAX_WAIT_MS = 100


class ShortFetchConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts
        return consumer


def first_unread_offsets(
    fetched: Mapping[Any, list[Any]], yielded: Counter[Any], partitions: set[Any]
) -> dict[Any, int]:
    """For each of `partitions` whose fetched records were not all handed on, the offset of
    the first record that was not (records of one partition are handed on in offset order)."""
    return {
        tp: records[yielded[tp]].offset
        for tp, records in fetched.items()
        if tp in partitions and len(records) > yielded[tp]
    }


class ShortFetchConsumer(driver.Consumer):
    """Faust's consumer, with a short fetch wait and no changelog records silently dropped."""

    _fetched: Mapping[Any, list[Any]] | None = None
    _fetched_in_generation = -1

    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return ShortFetchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _wait_next_records(self, timeout: float) -> Any:  # noqa: ASYNC109 - Faust's
        records, active_partitions = await super()._wait_next_records(timeout)
        self._fetched = records
        self._fetched_in_generation = self.app.consumer_generation_id
        return records, active_partitions

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:  # noqa: ASYNC109
        # Faust discards a fetched batch when the flow was stopped (a rebalance) while it was
        # in flight, then seeks back to the committed offsets. Changelog partitions have no
        # committed offset, so a batch fetched just after recovery's seek and discarded left
        # the changelog's position past records recovery never saw: recovery then waited
        # forever (seen in CI as a worker stuck in "Restoring state" after a rebalance).
        yielded: Counter[Any] = Counter()
        try:
            async for tp, message in super().getmany(timeout):
                yielded[tp] += 1
                yield tp, message
        finally:
            fetched, self._fetched = self._fetched, None
            if fetched and not self.should_stop:
                await self._rewind_dropped_changelog_records(fetched, yielded)

    async def _rewind_dropped_changelog_records(
        self, fetched: Mapping[Any, list[Any]], yielded: Counter[Any]
    ) -> None:
        if self.app.consumer_generation_id != self._fetched_in_generation:
            return  # a newer rebalance: its recovery seeks every changelog partition itself
        assigned = self.assignment()
        changelogs = {tp for tp in fetched if tp in assigned and self._is_changelog_tp(tp)}
        rewind = first_unread_offsets(fetched, yielded, changelogs)
        if not rewind:
            return
        log.info("re-reading changelog records fetched during a rebalance: %s", rewind)
        try:
            await self.seek_wait(rewind)
        except Exception:  # a new rebalance: its recovery seeks these partitions again
            log.warning("could not rewind changelog partitions %s", rewind, exc_info=True)


class Transport(driver.Transport):
    Producer = IdempotentProducer
    Consumer = ShortFetchConsumer
