"""The session pipeline's Faust side: tables, the sessions and offline agents, the due timer.

Agents stay thin: decode, call `SessionProcessor`, send. Rooms, messages and crm-data are
consumed by one agent (they are co-partitioned by room id), so a room's events apply in one
place, one at a time, against tables whose changelog partitions match the input partitions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from faust.types import StreamT
from msgspec.structs import replace

from streams import metrics, tracing
from streams.agents.tables import SESSION_TABLES, TableSpec
from streams.app import AssignmentWatch, Omnihooks, send_rejected
from streams.core.clock import iso
from streams.core.erasure import ERASE_EVENT, erase_notice
from streams.core.events import (
    InternalRoomEvent,
    InvalidEvent,
    MessageEvent,
    RoomEvent,
    decode_crm_data,
    decode_message_event,
    decode_offline_message,
    decode_room_event,
    written_by_visitor,
)
from streams.core.leads import LeadPatterns
from streams.core.sessions import SessionProcessor, Source
from streams.core.table_store import TableStore
from streams.engine import (
    DirectTable,
    Outbox,
    bytes_table,
    finish,
    order_by_timestamp,
    release_freed_memory,
    rocksdb_memory,
)
from topics.catalogue import Topic
from topics.records import ErasureReceipt, WebhookJob

log = logging.getLogger(__name__)


class JobSender:
    """Where the session agents' jobs and rejected records go."""

    def __init__(self, omnihooks: Omnihooks) -> None:
        self.jobs = Outbox(omnihooks.app, omnihooks.topics[Topic.WEBHOOK_JOBS])
        self.rejected = omnihooks.topics[Topic.REJECTED]
        # Room for the attempts a retry or dead letter adds to the same job.
        self.max_job_bytes = omnihooks.catalogue[Topic.WEBHOOK_JOBS].max_message_bytes // 2

    def send(self, jobs: list[WebhookJob]) -> list[str]:
        """Send the jobs; returns why any could not be (too big for the jobs topic), so the
        record that made them is kept on `rejected` instead of crashing the agent on it."""
        refused = []
        for job in jobs:
            value = job.to_json()
            if len(value) > self.max_job_bytes:
                refused.append(
                    f"the {job.type} webhook {job.delivery_id} is {len(value):,} bytes, over "
                    f"the {self.max_job_bytes:,} a job may have (the jobs topic's "
                    "max.message.bytes halved, for its attempts): not sent"
                )
                continue
            self.jobs.send(job.key(), value)
            metrics.JOBS_EMITTED.labels(job.type).inc()
        return refused

    async def send_or_reject(self, message: Any, jobs: list[WebhookJob]) -> None:
        """Send the jobs `message` made; any refused keeps `message` on `rejected`."""
        for reason in self.send(jobs):
            await self.reject(message, reason)

    async def reject(self, message: Any, reason: str) -> None:
        log.warning("rejected %s[%d]@%d: %s",
                    message.topic, message.partition, message.offset, reason)  # fmt: skip
        await send_rejected(self.rejected, message, reason)
        metrics.REJECTED.labels(message.topic).inc()


MakeJobs = Callable[[Any], list[WebhookJob]]


async def apply_each(stream: StreamT[Any], out: JobSender, make_jobs: MakeJobs) -> None:
    """Every input record of an agent, one at a time: its jobs are sent, or the record is
    kept on `rejected` with the reason, and either way its event is finished, so the
    partition's commits go on. Bad input (`InvalidEvent`) says why; any other exception
    is a bug, logged with the record's place and kept with the error. A failed write to
    Kafka is neither: it stops the agent before the event is finished, so the worker
    restarts and reads the record again."""
    async for event in stream.noack().events():  # type: ignore[attr-defined]  # noack is on Stream, not StreamT
        message = event.message
        incoming = tracing.header_of(message.headers)
        try:
            with tracing.input_record(incoming, message.topic, message.partition,
                                      message.offset) as stamp:  # fmt: skip
                jobs = stamp(make_jobs(message))
        except InvalidEvent as exc:
            await out.reject(message, exc.reason)
        except Exception as exc:
            log.exception("failed on %s[%d]@%d",
                          message.topic, message.partition, message.offset)  # fmt: skip
            await out.reject(message, f"internal error: {type(exc).__name__}: {exc}")
        else:
            await out.send_or_reject(message, jobs)
        finish(event)


class SessionsAgent:
    """Applies each rooms, messages and crm-data record to its room; sends the jobs."""

    def __init__(self, omnihooks: Omnihooks, processor: SessionProcessor, out: JobSender) -> None:
        self.processor = processor
        self.out = out
        self.endpoints_loaded = omnihooks.endpoints_loaded
        self.names = omnihooks.catalogue.names(omnihooks.settings.topic_prefix)
        self.max_bytes = omnihooks.settings.max_event_bytes
        self.crm_data = Outbox(omnihooks.app, omnihooks.topics[Topic.CRM_DATA])
        self.receipts = Outbox(omnihooks.app, omnihooks.topics[Topic.ERASURES])

    def apply(self, message: Any) -> list[WebhookJob]:
        # The record's partition is the room's: crm-data from the answer goes back there.
        return [replace(job, room_partition=message.partition) for job in self._jobs(message)]

    def _jobs(self, message: Any) -> list[WebhookJob]:
        source = Source(message.topic, message.partition, message.offset, tracing.current())
        if message.topic == self.names[Topic.MESSAGES]:
            event = decode_message_event(message.key, message.value, self.max_bytes)
            return self.processor.on_message_event(event, source)
        if message.topic == self.names[Topic.ROOMS]:
            # The rooms topic carries message events too in the one-topic layout.
            decoded = decode_room_event(message.key, message.value, self.max_bytes)
            if isinstance(decoded, RoomEvent):
                return self.processor.on_room_event(decoded, source)
            if isinstance(decoded, MessageEvent):
                return self.processor.on_message_event(decoded, source)
            if decoded.event == ERASE_EVENT:
                return self.erase(decoded, message.partition)
            return self.processor.on_internal_event(decoded, source)
        if message.value is None:
            return []  # a tombstone: an erased room's answer going (see `erase`)
        answer = decode_crm_data(message.value, self.max_bytes)
        if not self.processor.on_crm_data(answer) and message.key:
            # an erased room's late answer (a job sent before the erasure): gone too
            self.crm_data.send(message.key, None, message.partition)
        return []

    def erase(self, request: InternalRoomEvent, partition: int) -> list[WebhookJob]:
        """A visitor's erasure, in this partition: their rooms go from the tables (and their
        changelogs), each room's crm-data gets a tombstone, the delivery workers are told to
        drop the rooms' delivery-order lines, and what went is written on `erasures`."""
        digests = (request.ref or "").split(",")
        erased = self.processor.erase(request.id, digests, partition)
        rooms = [*erased.rooms, *erased.again]  # tombstones again: one may have been lost
        for room_id in rooms:
            self.crm_data.send(room_id.encode(), None, partition)
        receipt = ErasureReceipt(request.id, partition, tuple(erased.rooms), erased.messages,
                                 iso(time.time()))  # fmt: skip
        self.receipts.send(request.id.encode(), receipt.to_json())
        if erased.rooms:
            log.warning("erasure %s: %d rooms and %d messages erased from partition %d",
                        request.id, len(erased.rooms), erased.messages, partition)  # fmt: skip
        return [erase_notice(request.id, room_id) for room_id in rooms]

    async def run(self, stream: StreamT[Any]) -> None:
        await self.endpoints_loaded.wait()  # no webhook is made before every endpoint is known
        await apply_each(stream, self.out, self.apply)


class OfflineMessagesAgent:
    """Turns each offline message into its webhook job."""

    def __init__(self, omnihooks: Omnihooks, processor: SessionProcessor, out: JobSender) -> None:
        self.processor = processor
        self.out = out
        self.endpoints_loaded = omnihooks.endpoints_loaded
        self.max_bytes = omnihooks.settings.max_event_bytes

    def apply(self, message: Any) -> list[WebhookJob]:
        offline = decode_offline_message(message.value, self.max_bytes)
        return self.processor.on_offline_message(offline)

    async def run(self, stream: StreamT[Any]) -> None:
        await self.endpoints_loaded.wait()
        await apply_each(stream, self.out, self.apply)


class DueEvents:
    """Publishes closes past their grace and rooms past retention as internal room events.

    Timers cannot change Faust tables; the events reach whichever worker owns the room.
    """

    def __init__(self, omnihooks: Omnihooks, processor: SessionProcessor) -> None:
        self.processor = processor
        self.rooms = omnihooks.topics[Topic.ROOMS]
        self._assignment = AssignmentWatch(omnihooks.app)
        self.app = omnihooks.app

    async def run(self) -> None:
        now = time.time()
        if self._assignment.changed():
            # After a rebalance the tables hold rooms this worker had not seen: re-read them
            # once (every room, so never on a timer: a million rooms take seconds). Between
            # rebalances the processor keeps the schedule as it applies each record.
            started = time.monotonic()
            read = self.processor.rebuild_schedule()
            release_freed_memory()  # what the recovery decoded and dropped
            log.info("due-event schedule rebuilt in %.1f s from %s rooms: %d with a close or "
                     "expiry due; recovery's freed memory given back",
                     time.monotonic() - started, f"{read:,}", self.processor.scheduled)  # fmt: skip
            native = rocksdb_memory(self.app)
            if native:
                log.info("RocksDB holds %s", ", ".join(
                    f"{kind} {size / 2**20:.1f} MB" for kind, size in native.items()))  # fmt: skip
        for due in self.processor.due_events():
            await self.rooms.send(
                key=due.room_id.encode(), value=due.to_json(now), partition=due.partition
            )


def register_session_agents(omnihooks: Omnihooks, leads: LeadPatterns) -> SessionProcessor:
    """Add the session tables, agents and timer to the app; returns the processor."""
    app, settings = omnihooks.app, omnihooks.settings

    def table(spec: TableSpec) -> DirectTable:
        # Deferred: a room's state is rewritten by each of its records, but only its value
        # at the commit needs the changelog (one record per room and commit, not per record).
        partitions = omnihooks.catalogue[spec.partitions_of].partitions
        made = bytes_table(app, spec.name, partitions, spec.help, spec.config)
        return DirectTable(app, made, deferred=True)

    store = TableStore(*(table(spec) for spec in SESSION_TABLES))
    processor = SessionProcessor(
        settings.session_policy(), store, leads, clock=time.time, directory=omnihooks.endpoints
    )
    names = omnihooks.catalogue.names(settings.topic_prefix)
    # Tie-break order for equal timestamps: a room event before a message of the same
    # millisecond (a `taken` and the agent's first message), crm-data last.
    ordered = [names[Topic.ROOMS], names[Topic.MESSAGES], names[Topic.CRM_DATA]]
    if settings.order_merge:
        idle_s, grace_s = settings.order_idle_ms / 1000, settings.order_grace_ms / 1000

        def may_need_earlier(tp: Any, record: Any) -> bool:
            # Live, a message its room's state explains goes at once, and so does a CRM's
            # answer: it answers a webhook made from records already applied, so nothing
            # still on its way can come before it (held, each answer would hold every
            # later message of its partition for the grace). Room events and a message its
            # room cannot explain yet wait for what may still be on its way.
            if tp.topic == names[Topic.CRM_DATA]:
                return False
            if tp.topic != names[Topic.MESSAGES] or not record.key:
                return True
            room_id = record.key.decode(errors="replace")
            return not processor.explains(room_id, written_by_visitor(record.value))

        order_by_timestamp(app, ordered, idle_s, grace_s, may_need_earlier)
    inputs = app.topic(
        *ordered, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    out = JobSender(omnihooks)
    app.agent(inputs, name="sessions")(SessionsAgent(omnihooks, processor, out).run)
    offline = OfflineMessagesAgent(omnihooks, processor, out)
    app.agent(omnihooks.topics[Topic.OFFLINE_MESSAGES], name="offline-messages")(offline.run)
    app.timer(interval=1.0, name="session-due-events")(DueEvents(omnihooks, processor).run)
    return processor
