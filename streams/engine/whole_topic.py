"""A small compacted topic every worker reads whole, outside the consumer group: operators'
controls, which each delivery worker must know for every endpoint, not for its partitions.

aiokafka's own consumer with no group: every partition assigned, read from the beginning,
then followed. `loaded` is set once the records that existed at start are applied, so a
worker attempts nothing before it knows which endpoints are paused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

log = logging.getLogger(__name__)

Apply = Callable[[bytes | None, bytes | None], None]


async def follow_whole_topic(
    bootstrap: str, topic: str, partitions: int, apply: Apply, loaded: asyncio.Event
) -> None:
    """Apply each record's key and value, from the topic's beginning, until cancelled.
    `partitions` is the catalogue's count: a consumer's metadata may not list a topic
    created a moment ago."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            raise RuntimeError(f"topic {topic} does not exist: run `omnihooks topics apply`")
        assigned = [TopicPartition(topic, n) for n in range(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        while True:
            if not loaded.is_set():
                positions = [await consumer.position(tp) for tp in assigned]
                if all(at >= ends[tp] for at, tp in zip(positions, assigned, strict=True)):
                    loaded.set()
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    try:
                        apply(record.key, record.value)
                    except Exception:
                        log.exception("%s@%d: not a usable record; skipped", topic, record.offset)
    finally:
        await consumer.stop()
