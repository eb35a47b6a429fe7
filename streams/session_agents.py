"""The session pipeline's Faust side: tables, the sessions and offline agents, the due timer.

Agents stay thin: decode, call `SessionProcessor`, send. Rooms, messages and crm-data are
consumed by one agent (they are co-partitioned by room id), so a room's events apply in one
place, one at a time, against tables whose changelog partitions match the input partitions.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

from faust.types import StreamT

from streams.app import Omnihooks, send_rejected
from streams.engine import bytes_table, finish, order_by_timestamp
from streams.events import (
    InvalidEvent,
    MessageEvent,
    RoomEvent,
    decode_crm_data,
    decode_message_event,
    decode_offline_message,
    decode_room_event,
)
from streams.leads import LeadPatterns
from streams.sessions import SessionProcessor, Source
from streams.table_store import TableStore
from topics.catalogue import Topic
from topics.records import WebhookJob

log = logging.getLogger(__name__)

RESCAN_INTERVAL_S = 30.0


def register_session_agents(oh: Omnihooks, leads: LeadPatterns) -> SessionProcessor:
    """Add the session tables, agents and timer to the app; returns the processor."""
    app, settings, topics = oh.app, oh.settings, oh.topics
    partitions = oh.catalogue[Topic.ROOMS].partitions
    store = TableStore(
        bytes_table(app, "rooms", partitions, "room, visitor, agent, crmData and counters"),
        bytes_table(app, "messages", partitions, "transcript messages by room and message id"),
        bytes_table(app, "message-order", partitions, "message ids by room and arrival sequence"),
    )
    processor = SessionProcessor(settings, store, leads, clock=time.time)
    names = oh.catalogue.names(settings.topic_prefix)
    # Tie-break order for equal timestamps: a room event before a message of the same
    # millisecond (a `taken` and the agent's first message), crm-data last.
    ordered = [names[Topic.ROOMS], names[Topic.MESSAGES], names[Topic.CRM_DATA]]
    if settings.order_merge:
        idle_s, grace_s = settings.order_idle_ms / 1000, settings.order_grace_ms / 1000
        order_by_timestamp(app, ordered, idle_s, grace_s)
    inputs = app.topic(
        *ordered,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    jobs_topic = topics[Topic.WEBHOOK_JOBS]
    rejected_topic = topics[Topic.REJECTED]
    max_bytes = settings.max_event_bytes

    async def reject(message: Any, reason: str) -> None:
        await send_rejected(rejected_topic, message, reason)

    async def send_jobs(jobs: list[WebhookJob]) -> None:
        for job in jobs:
            await jobs_topic.send(key=job.key(), value=job.to_json())

    def apply(message: Any) -> list[WebhookJob]:
        source = Source(message.topic, message.partition, message.offset)
        if message.topic == names[Topic.MESSAGES]:
            return processor.on_message_event(
                decode_message_event(message.key, message.value, max_bytes), source
            )
        if message.topic == names[Topic.ROOMS]:
            event = decode_room_event(message.key, message.value, max_bytes)
            if isinstance(event, RoomEvent):
                return processor.on_room_event(event, source)
            if isinstance(event, MessageEvent):
                return processor.on_message_event(event, source)
            return processor.on_internal_event(event)
        processor.on_crm_data(decode_crm_data(message.value, max_bytes))
        return []

    async def sessions(stream: StreamT[Any]) -> None:
        async for event in stream.noack().events():  # type: ignore[attr-defined]  # noack is on Stream, not StreamT
            message = event.message
            try:
                jobs = apply(message)
            except InvalidEvent as exc:
                log.warning(
                    "rejected %s[%d]@%d: %s",
                    message.topic,
                    message.partition,
                    message.offset,
                    exc.reason,
                )
                await reject(message, exc.reason)
            except Exception as exc:
                # A bug, not bad input: keep the record (rejected, with the error) and go on.
                log.exception(
                    "failed on %s[%d]@%d", message.topic, message.partition, message.offset
                )
                await reject(message, f"internal error: {type(exc).__name__}: {exc}")
            else:
                # The record's partition is the room's: crm-data from the answer goes back.
                await send_jobs([replace(job, room_partition=message.partition) for job in jobs])
            finish(event)

    app.agent(inputs, name="sessions")(sessions)

    async def offline(stream: StreamT[Any]) -> None:
        async for event in stream.noack().events():  # type: ignore[attr-defined]
            message = event.message
            try:
                jobs = processor.on_offline_message(
                    decode_offline_message(message.value, max_bytes)
                )
            except InvalidEvent as exc:
                await reject(message, exc.reason)
            else:
                await send_jobs(jobs)
            finish(event)

    app.agent(topics[Topic.OFFLINE_MESSAGES], name="offline-messages")(offline)

    rooms_topic = topics[Topic.ROOMS]
    schedule = {"assigned": frozenset(), "rescan_at": 0.0}

    async def publish_due_events() -> None:
        now = time.time()
        assigned = frozenset(app.consumer.assignment()) if app.consumer else frozenset()
        if assigned != schedule["assigned"] or now >= float(schedule["rescan_at"]):  # type: ignore[arg-type]
            # After a rebalance the tables hold rooms this worker had not seen: re-read them.
            schedule["assigned"] = assigned
            schedule["rescan_at"] = now + RESCAN_INTERVAL_S
            processor.rebuild_schedule()
        for due in processor.due_events():
            await rooms_topic.send(
                key=due.room_id.encode(), value=due.to_json(now), partition=due.partition
            )

    app.timer(interval=1.0, name="session-due-events")(publish_due_events)
    return processor
