"""A small compacted topic every worker reads whole, outside the consumer group: operators'
controls and the endpoints, which each worker must know whole, not for its partitions.

aiokafka's own consumer with no group: every partition assigned, read from the beginning,
then followed. `loaded` is set once the records that existed at start are applied, so a
worker attempts nothing before it knows which endpoints are paused. A missing topic before
that is an error (the worker stops: run `omnihooks topics apply`); a failure after it is
logged and the topic read again from the beginning, the controls already known kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiokafka.structs import TopicPartition

from streams.engine.kafka import KafkaConfig, aio_reader

log = logging.getLogger(__name__)

Apply = Callable[[bytes | None, bytes | None], None]
SLOW_LOAD_S = 30.0
RETRY_S = (1.0, 2.0, 5.0, 10.0, 30.0)


async def follow_whole_topic(
    config: KafkaConfig,
    topic: str,
    partitions: int,
    apply: Apply,
    loaded: asyncio.Event,
    keep_trying: bool = False,
) -> None:
    """Apply each record's key and value, from the topic's beginning, until cancelled.
    `partitions` is the catalogue's count: a consumer's metadata may not list a topic
    created a moment ago. A failure before the first load ends it (a worker does not start
    without its endpoints) unless `keep_trying`: a server that answers without the topic
    (ingest) reads it once Kafka is back."""
    failures = 0
    while True:
        try:
            await _read(config, topic, partitions, apply, loaded)
        except asyncio.CancelledError:
            raise
        except Exception:
            if not loaded.is_set() and not keep_trying:
                raise
            wait = RETRY_S[min(failures, len(RETRY_S) - 1)]
            failures += 1
            log.exception("reading %s failed; again in %.0f s, what it said kept", topic, wait)
            await asyncio.sleep(wait)


async def _read(
    config: KafkaConfig, topic: str, partitions: int, apply: Apply, loaded: asyncio.Event
) -> None:
    consumer = aio_reader(config)
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            raise RuntimeError(f"topic {topic} does not exist: run `omnihooks topics apply`")
        assigned = [TopicPartition(topic, n) for n in range(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        started, warned = time.monotonic(), False
        while True:
            if not loaded.is_set():
                positions = [await consumer.position(tp) for tp in assigned]
                if all(at >= ends[tp] for at, tp in zip(positions, assigned, strict=True)):
                    loaded.set()
                elif not warned and time.monotonic() - started > SLOW_LOAD_S:
                    warned = True
                    log.warning("still reading %s after %.0f s: waiting for it",
                                topic, SLOW_LOAD_S)  # fmt: skip
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    try:
                        apply(record.key, record.value)
                    except Exception:
                        log.exception("%s@%d: not a usable record; skipped", topic, record.offset)
    finally:
        await consumer.stop()
