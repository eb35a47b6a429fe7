"""Session state: what a room's events and messages do to it, and which webhook jobs they emit.

No Kafka here: state lives behind `SessionStore` (Faust tables in the worker, a dict in
unit tests). One room's state is a small `RoomState`; its transcript is stored one message
per key, with a per-room sequence giving the order of arrival, so a message costs O(1) to
store however long the conversation is, and the changelog gets one small record per change.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import msgspec

from streams.core.clock import iso
from streams.core.compat import Profile
from streams.core.endpoints import EndpointDirectory
from streams.core.erasure import VisitorIndex, visitor_digests
from streams.core.events import (
    CrmData,
    InternalRoomEvent,
    MessageEvent,
    OfflineMessageEvent,
    RoomEvent,
)
from streams.core.leads import LeadPatterns, capture_leads, is_lead_candidate
from streams.core.payloads import (
    CLOSING_MESSAGE,
    PayloadType,
    build_message_payload,
    build_offline_payload,
    build_session_payload,
)
from topics import codec
from topics.records import DEFAULT_ENDPOINT, EndpointRecord, InternalRoomRecord, WebhookJob
from topics.state import (
    BeforeImage,
    CompletedClose,
    PendingClose,
    RoomState,
    SeenEntry,
    StoredMessage,
)

log = logging.getLogger(__name__)

JSON = dict[str, Any]

# Delivery ids are uuid5 of (workspace, input event id, type): a reprocessed input yields the
# same id, so a receiver can drop the copy.
DELIVERY_NAMESPACE = uuid.UUID("6f0d6c1e-2b7e-4d7a-9a57-6f6d6e69686f")
SEEN_EVENTS_KEPT = 64
# Records read again after a crash are those past the committed offset: a commit interval's
# worth of a room's records. Their `seen` entries keep what they changed (a few dozen bytes).
BEFORE_IMAGES_KEPT = 16

# room event -> its webhook and the trigger (streams/core/endpoints.py TRIGGERS) that wants it
ROOM_TRIGGERS: dict[str, tuple[PayloadType, str]] = {
    "started": ("LivechatSessionStart", "start"),
    "queued": ("LivechatSessionQueued", "chat_queued"),
    "taken": ("LivechatSessionTaken", "chat_taken"),
    "forwarded": ("LivechatSessionForwarded", "forward"),
}


@dataclass(frozen=True)
class SessionPolicy:
    """What the session pipeline needs from the settings: the era's rules and its waits."""

    profile: Profile
    close_grace_s: float = 30.0
    closed_room_retention_s: float = 3600.0
    # Rocket.Chat's Site_Url: with it, a message with a file carries `fileUpload`.
    site_url: str = ""


@dataclass(frozen=True)
class Source:
    """Where an input record came from: replays of the same record are not duplicates."""

    topic: str
    partition: int
    offset: int
    # the record's trace context when tracing (its span): a close's span links to those of
    # the records that made its room
    trace: str | None = None


def source_id(source: Source) -> str:
    return f"{source.topic}:{source.partition}:{source.offset}"


class SessionStore(Protocol):
    """Where room state and transcripts live."""

    visitors: VisitorIndex  # a visitor's rooms, for erasure

    def load(self, room_id: str) -> RoomState | None: ...
    def peek(self, room_id: str) -> RoomState | None: ...  # to read, never to change
    def save(self, room_id: str, state: RoomState) -> None: ...
    def drop(self, room_id: str, state: RoomState, erasing: bool = False) -> int: ...
    def message(self, room_id: str, message_id: str) -> StoredMessage | None: ...
    def put_message(self, room_id: str, message_id: str, stored: StoredMessage) -> None: ...
    def transcript(
        self, room_id: str, next_seq: int, keep_deleted: Callable[[str], bool] | None = None
    ) -> Iterator[JSON]: ...
    def raw_rooms(self) -> Iterable[tuple[str, bytes]]: ...


@dataclass
class Erased:
    """What an erasure removed from one partition: the rooms it erased (and how many of
    their messages), and rooms an earlier erasure had, cleaned again."""

    rooms: list[str] = field(default_factory=list)
    messages: int = 0
    again: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DueEvent:
    """An internal event the timer must publish onto the rooms topic."""

    room_id: str
    event: str
    ref: str | None
    partition: int | None = None  # the room's input partition; None: key hash

    def to_json(self, now: float) -> bytes:
        event_id = f"{self.event}:{self.room_id}:{self.ref or ''}:{now:.3f}"
        return InternalRoomRecord(event_id, self.event, iso(now), self.room_id, self.ref).to_json()


class SessionProcessor:
    """Applies input events to session state and returns the webhook jobs they trigger."""

    def __init__(
        self,
        policy: SessionPolicy,
        store: SessionStore,
        leads: LeadPatterns,
        clock: Callable[[], float],
        directory: EndpointDirectory,
    ) -> None:
        self.policy = policy
        # Which endpoints of a workspace want which webhooks: the environment's alone unless
        # the worker follows the `endpoints` topic into it.
        self.directory = directory
        self.store = store
        self.leads = leads
        # While a record is read again after a crash: messages deleted by records applied
        # after it were not deleted yet when it first ran (see `_deleted_after`).
        self._kept_deleted: Callable[[str], bool] | None = None
        self.clock = clock
        # room id -> when to look again; rebuilt from the store after a rebalance
        self._close_due: dict[str, float] = {}
        self._expire_due: dict[str, float] = {}

    # -- room lifecycle --------------------------------------------------------------------

    def _begin(self, state: RoomState, event_id: str, source: Source) -> _Start | None:
        """Start applying a record to `state`; None for a duplicate (see `_is_duplicate`)."""
        saved = _seen_entry(state, event_id, source)
        if self._is_duplicate(state, event_id, source):
            return None
        self._kept_deleted = _deleted_after(state, source)
        if saved is not None:
            return _Start(saved, saved.before, None)
        return _Start(None, None, _before(state))

    def on_room_event(self, event: RoomEvent, source: Source) -> list[WebhookJob]:
        room_id = event.room_id
        state = self.store.load(room_id) or RoomState()
        if state.erased_at is not None:
            return []  # a late record of an erased room: it must not bring the room back
        start = self._begin(state, event.id, source)
        if start is None:
            return []
        saved, image, first_image = start
        _note_trace(state, source)
        # The room as this record found it, for its webhooks (see `_before`): read again
        # after a crash, the record finds the room moved on by itself and later records.
        view = _as_before(state, image, leads=False) if image is not None else state
        if first_image is not None:
            _note_before(state, event.id, source, first_image)
        found_lm = (state.room or {}).get("lm")
        state.partition = source.partition
        for target in [state] if view is state else [state, view]:
            target.room = _merge_room(target.room, event.room)
            if event.has_visitor:
                target.visitor = _keep_captured_leads(target.visitor, event.visitor)
            if event.has_agent:
                target.agent = event.agent
        # Leads are counted after the merge: a room event's visitor document comes first and
        # the addresses captured before stay after it (`_keep_captured_leads`).
        if first_image is not None:
            first_image.emails, first_image.phones = _lead_counts(state.visitor)
        elif image is not None:
            view.visitor = _first_leads(view.visitor, image.emails, image.phones)
        if event.has_visitor:
            self._index(room_id, source.partition, state)
        if saved is not None:
            # The room state already holds what came after this record; its messages, read
            # again, do not move `lm` a second time, so the `lm` found stays.
            _set_lm(state.room, found_lm)
        jobs: list[WebhookJob] = []
        if event.event in ROOM_TRIGGERS:
            payload_type, trigger = ROOM_TRIGGERS[event.event]
            transfer = event.transfer if event.event == "forwarded" else None
            jobs += self._session_jobs(payload_type, trigger, room_id, view, event, transfer)
        elif event.event == "closed":
            state.closed_at = self.clock()
            self._expire_due[room_id] = state.closed_at + self.policy.closed_room_retention_s
            if self.directory.wanting(event.workspace, "close"):
                jobs += self._close_or_wait(room_id, state, view, event)
        elif event.event == "updated" and state.is_closed:
            # Rocket.Chat sends LivechatEdit whenever a closed room's info is saved,
            # whatever the trigger settings say.
            jobs += self._session_jobs("LivechatEdit", None, room_id, view, event)
        jobs = self._numbered(state, image, jobs)
        self.store.save(room_id, state)
        return jobs

    def _close_or_wait(
        self, room_id: str, state: RoomState, view: RoomState, event: RoomEvent
    ) -> list[WebhookJob]:
        expected = event.room.get("msgs")
        messages = self._complete_transcript(room_id, view, expected)
        if messages is not None:
            state.pending_close = None
            return self._session_jobs(
                "LivechatSession", "close", room_id, view, event, messages=messages
            )
        assert expected is not None  # a close without a count never waits
        due = self.clock() + self.policy.close_grace_s
        state.pending_close = PendingClose(event.id, event.workspace, expected, due)
        self._close_due[room_id] = due
        return []

    def _complete_transcript(
        self, room_id: str, state: RoomState, expected: int | None
    ) -> list[JSON] | None:
        """The room's transcript when it holds the `expected` messages, else None.

        Counted on the stored messages, not only on `present`: a record read again after a
        crash finds the room state as the crashed run left it, which can count messages of
        later records whose own writes were lost (they are redone when those records are
        read again, after this one)."""
        if expected is not None and state.present < expected:
            return None
        messages = list(self._transcript(room_id, state.next_seq))
        return messages if expected is None or len(messages) >= expected else None

    # -- messages --------------------------------------------------------------------------

    def explains(self, room_id: str, by_visitor: bool) -> bool:
        """Whether the room's state can take a live message now: the room started, and an
        agent's message has its agent. If not, a room event written just before it may
        still be on its way, and the message waits for it (the order merge's grace)."""
        state = self.store.peek(room_id)
        if state is None or state.room is None:
            return False
        return by_visitor or state.agent is not None or "servedBy" in state.room

    def on_message_event(self, event: MessageEvent, source: Source) -> list[WebhookJob]:
        room_id, message_id = event.room_id, event.message_id
        state = self.store.load(room_id) or RoomState()
        if state.erased_at is not None:
            return []
        # A record writes the message, its order entry and the room state: three changelog
        # records, and a crash can keep any of them and lose the others. The record is then
        # read again (its offset was not committed) and redone from what survived: `seen`
        # (in the room state) tells whether the counts were taken and which place the
        # message got; a stored message (or delete marker) naming this record was written by
        # it, not by an earlier one.
        start = self._begin(state, event.id, source)
        if start is None:
            return []
        saved, image, first_image = start
        state.partition = source.partition
        _note_trace(state, source)
        stored = self.store.message(room_id, message_id)
        here = source_id(source)
        if event.event == "deleted":
            if stored is not None and stored.deleted_by is None:
                self.store.put_message(
                    room_id, message_id, msgspec.structs.replace(stored, deleted_by=here)
                )
                if saved is None:
                    state.present -= 1
            elif stored is not None and stored.deleted_by == here and saved is None:
                state.present -= 1  # the marker was written, the counts were not
            self.store.save(room_id, state)
            return []
        message = event.message
        # Deleted by a later record: this one is being read again after a crash, and the
        # delete (read again next) still stands.
        deleted_by = stored.deleted_by if stored is not None else None
        if deleted_by is not None and not _is_later(deleted_by, source):
            self.store.save(room_id, state)  # an edit of a deleted message: it stays deleted
            return []
        is_new = stored is None or stored.source == here
        if is_new:
            if stored is not None and stored.seq is not None:
                seq = stored.seq
            elif saved is not None and saved.seq is not None:
                seq = saved.seq
            else:
                seq = state.next_seq
            self.store.put_message(
                room_id, message_id, StoredMessage(message, seq, here, deleted_by)
            )
            _note_place(state, event.id, source, seq)
            if saved is None:
                state.next_seq = max(state.next_seq, seq + 1)
                state.present += 1
        else:
            assert stored is not None
            # An edit keeps the message's place and first source.
            self.store.put_message(
                room_id, message_id, StoredMessage(message, stored.seq, stored.source, deleted_by)
            )
        if state.room is None:
            state.room = {"_id": room_id}
        # The room as this record found it, for its own webhooks (see `_before`).
        if first_image is not None:
            _note_before(state, event.id, source, first_image)
        view = _as_before(state, image) if image is not None else state
        jobs: list[WebhookJob] = []
        # Built before lead capture saves the address: Rocket.Chat's CRM callback runs at
        # priority MEDIUM, lead capture at LOW (`lib/callbacks/callbacksBase.ts`,
        # `hooks/leadCapture.ts`), so the address shows from the next webhook on.
        jobs += self._message_jobs(room_id, state, view, message, event)
        captured = self._capture_leads(view, message) if is_new else False
        if captured:
            jobs += self._session_jobs("LeadCapture", "lead_capture", room_id, view, event)
            self._index(room_id, source.partition, state)
        if is_new and "t" not in message:
            # The seed's Message sample shows the previous message's time: lm moves after
            # the message's own webhook is built. System messages leave it (the seed's
            # close body has the closing message but the last visitor message's time).
            if saved is None:
                state.room["lm"] = message["ts"]
            if view is not state and view.room is not None:
                view.room["lm"] = message["ts"]
        if view is not state and is_new:
            # The view moves on by this record only: its place and its count.
            view.next_seq = min(state.next_seq, max(view.next_seq, seq + 1))
            view.present += 1
        # A close waiting for its messages: this record may complete it. Read again after a
        # crash that kept the room state (the close no longer pending) but lost the close's
        # job, the record makes it again from what its first run noted.
        pending = state.pending_close or _completed_close(image)
        if pending is not None:
            complete = self._complete_transcript(room_id, view, pending.expected)
            if complete is not None:
                jobs += self._pending_close_jobs(room_id, view, pending, complete)
                state.pending_close = None
                if first_image is not None:
                    _note_completed_close(first_image, pending)
        jobs = self._numbered(state, image, jobs)
        self.store.save(room_id, state)
        return jobs

    def _message_jobs(
        self, room_id: str, state: RoomState, view: RoomState, message: JSON, event: MessageEvent
    ) -> list[WebhookJob]:
        """The message's `Message` webhook for each endpoint of the room's workspace that
        wants it."""
        endpoints = [
            endpoint
            for endpoint in self.directory.enabled(event.workspace)
            if message_webhook_wanted(endpoint.triggers, self.directory.profile(endpoint), message)
        ]

        def build(profile: Profile, navigation: bool) -> JSON | None:
            return build_message_payload(
                view.room or state.room or {"_id": room_id},
                view.visitor,
                view.agent,
                message,
                crm_data=view.crm_data,
                send_navigation_history=navigation,
                profile=profile,
                site_url=self.policy.site_url,
            )

        return self._fan_out("Message", endpoints, build, room_id, event.id, event.workspace)

    def _capture_leads(self, state: RoomState, message: JSON) -> bool:
        if state.visitor is None or not is_lead_candidate(message):
            return False
        state.visitor, captured = capture_leads(state.visitor, message.get("msg") or "", self.leads)
        return captured

    # -- CRM answers and internal events ---------------------------------------------------

    def on_crm_data(self, data: CrmData) -> bool:
        """The CRM's answer into its room; False when the room was erased: the answer came
        back for a job sent before the erasure, and must go too."""
        state = self.store.load(data.room_id)
        if state is None:
            return True  # the room's state has expired: nothing will carry it any more
        if state.erased_at is not None:
            return False
        if self.policy.profile.crm_data_from_data_property:
            # 2023 servers keep the parsed answer's `data`, when truthy (sendToCRM.js:
            # `if (response.data?.data) saveCRMDataByRoomId(...)`).
            kept = crm_data_property(data.body)
            if not kept:
                return True
            state.crm_data = kept
        else:
            # Current servers keep the raw text of every 200 answer, an empty one included
            # (sendToCRM.ts); an empty value then leaves `crmData` out (`if (room.crmData)`).
            state.crm_data = data.body
        self.store.save(data.room_id, state)
        return True

    def erase(self, erasure_id: str, digests: Iterable[str], partition: int) -> Erased:
        """Erase the visitor these identity digests name from the rooms of `partition`: each
        room's state, messages and index entries go, and a marker without any of the
        visitor's data stays in the room's place for the closed-room retention, so a late
        record of the room (or a CRM's late answer) does not bring it back.

        A room found already erased is cleaned again (its marker keeps the transcript's
        length): after a crash that kept some of an erasure's writes and lost others, the
        same request read again, or any later one, finishes the job. It is reported erased
        again only to the request that erased it."""
        digests = list(digests)
        if not self.store.visitors.complete(partition):
            self._index_partition(partition)
        now = self.clock()
        erased = Erased()
        for room_id in self.store.visitors.rooms_of_any(digests, partition):
            state = self.store.load(room_id)
            if state is None:  # expired since: its entries go
                for digest in digests:
                    self.store.visitors.remove(digest, partition, room_id)
                continue
            if state.partition != partition:
                continue
            messages = self.store.drop(room_id, state, erasing=True)
            if state.erased_at is None or state.erased_by == erasure_id:
                erased.rooms.append(room_id)
                erased.messages += messages
            else:
                erased.again.append(room_id)
            since = (state.closed_at or now) if state.erased_at else now
            marker = RoomState(
                closed_at=since, erased_at=state.erased_at or now,
                erased_by=state.erased_by or erasure_id, partition=partition,
                next_seq=state.next_seq,
                indexed=sorted(visitor_digests(state.visitor) | set(state.indexed)),
            )  # fmt: skip
            self.store.save(room_id, marker)
            self._close_due.pop(room_id, None)
            self._expire_due[room_id] = since + self.policy.closed_room_retention_s
        return erased

    def _index(self, room_id: str, partition: int, state: RoomState) -> None:
        """The index in step with the room's visitor: identities it has gained added, those
        it no longer has (a changed address) removed; `state.indexed` says what is in."""
        digests = visitor_digests(state.visitor)
        indexed = set(state.indexed)
        if digests != indexed:
            self.store.visitors.add_digests(room_id, partition, digests - indexed)
            for digest in indexed - digests:
                self.store.visitors.remove(digest, partition, room_id)
            state.indexed = sorted(digests)

    def _index_partition(self, partition: int) -> None:
        """Once per partition, at its first erasure: rooms made before the index existed
        (or before an upgrade that brought it) are indexed, so none escapes."""
        # Ids first, then each room: the pass must not hold every room, nor see them change.
        unindexed = []
        for room_id, raw in self.store.raw_rooms():
            state = RoomState.from_json(raw)
            if state.partition == partition and state.visitor and not state.indexed:
                unindexed.append(room_id)
        for room_id in unindexed:
            room = self.store.load(room_id)
            if room is not None:
                self._index(room_id, partition, room)
                self.store.save(room_id, room)
        self.store.visitors.mark_complete(partition)

    def on_internal_event(
        self, event: InternalRoomEvent, source: Source | None = None
    ) -> list[WebhookJob]:
        self._kept_deleted = None
        state = self.store.load(event.room_id)
        if state is None:
            self._close_due.pop(event.room_id, None)
            self._expire_due.pop(event.room_id, None)
            return []
        if event.event == "omnihooks.close-due":
            image = first_image = None
            if source is not None:
                start = self._begin(state, event.id, source)
                if start is None:
                    return []
                _, image, first_image = start
                if first_image is not None:
                    _note_before(state, event.id, source, first_image)
            # Read again after a crash that kept the room state but lost the job: made again.
            pending = state.pending_close or _completed_close(image)
            if pending is None or pending.event_id != event.ref:
                if source is not None:
                    self.store.save(event.room_id, state)
                return []
            view = _as_before(state, image) if image is not None else state
            messages = list(self._transcript(event.room_id, view.next_seq))
            log.warning(
                "room %s closed with %d of the %d messages its close event counts after "
                "waiting %.0fs; sending the transcript as it is",
                event.room_id,
                len(messages),
                pending.expected,
                self.policy.close_grace_s,
            )
            jobs = self._pending_close_jobs(event.room_id, view, pending, messages)
            state.pending_close = None
            if first_image is not None:
                _note_completed_close(first_image, pending)
            jobs = self._numbered(state, image, jobs)
            self.store.save(event.room_id, state)
            return jobs
        if (
            event.event == "omnihooks.expire"
            and state.closed_at is not None
            and self.clock() >= state.closed_at + self.policy.closed_room_retention_s
        ):
            self.store.drop(event.room_id, state)
            self._expire_due.pop(event.room_id, None)
        return []

    def _pending_close_jobs(
        self,
        room_id: str,
        state: RoomState,
        pending: PendingClose,
        messages: list[JSON] | None = None,
    ) -> list[WebhookJob]:
        state.pending_close = None
        self._close_due.pop(room_id, None)
        return self._session_jobs(
            "LivechatSession", "close", room_id, state, None, messages=messages,
            event_id=pending.event_id, workspace=pending.workspace,
        )  # fmt: skip

    def due_events(self) -> list[DueEvent]:
        """Closes whose grace has run out and rooms past retention, for the timer to publish."""
        now = self.clock()
        due: list[DueEvent] = []
        for room_id, at in list(self._close_due.items()):
            if at <= now:
                state = self.store.load(room_id)
                if state is None or state.pending_close is None:
                    del self._close_due[room_id]
                    continue
                ref = state.pending_close.event_id
                due.append(DueEvent(room_id, "omnihooks.close-due", ref, state.partition))
                # ask again later if the event is lost or the partition moved
                self._close_due[room_id] = now + max(self.policy.close_grace_s, 5.0)
        for room_id, at in list(self._expire_due.items()):
            if at <= now:
                state = self.store.load(room_id)
                if state is None:
                    del self._expire_due[room_id]
                    continue
                due.append(DueEvent(room_id, "omnihooks.expire", None, state.partition))
                self._expire_due[room_id] = now + max(self.policy.closed_room_retention_s, 5.0)
        return due

    def rebuild_schedule(self) -> int:
        """Re-read pending closes and closed rooms from the store (after recovery/rebalance);
        returns how many rooms were read. Open rooms, most of them, are told from their bytes
        without decoding. One pass, not interleaved with the agents: the store must not
        change (or lose a revoked partition) under the iteration."""
        self._close_due.clear()
        self._expire_due.clear()
        retention = self.policy.closed_room_retention_s
        read = 0
        for room_id, raw in self.store.raw_rooms():
            read += 1
            if RoomState.nothing_scheduled(raw):
                continue
            state = RoomState.from_json(raw)
            if state.pending_close is not None:
                self._close_due[room_id] = state.pending_close.due_at
            if state.closed_at is not None:
                self._expire_due[room_id] = state.closed_at + retention
        return read

    @property
    def scheduled(self) -> int:
        """Rooms with a close or an expiry due."""
        return len(self._close_due.keys() | self._expire_due.keys())

    # -- offline messages (no room state) --------------------------------------------------

    def on_offline_message(self, event: OfflineMessageEvent) -> list[WebhookJob]:
        endpoints = self.directory.wanting(event.workspace, "offline_msg")
        if not endpoints:
            return []
        body = build_offline_payload(
            {"ts": event.ts, "name": event.name, "email": event.email, "message": event.message}
        )
        return [
            self._job("LivechatOfflineMessage", body, None, event.id, event.workspace, endpoint)
            for endpoint in endpoints
        ]

    # -- helpers ---------------------------------------------------------------------------

    def _is_duplicate(self, state: RoomState, event_id: str, source: Source) -> bool:
        """The same event id at another offset is the chat stack's duplicate: drop it. At the
        same offset it is Kafka redelivering after a crash: process it again (the updates are
        idempotent and the jobs keep their delivery ids), so no job is lost."""
        for seen in state.seen:
            if seen.event_id == event_id:
                return not _is_here(seen, event_id, source)
        state.seen.append(SeenEntry(event_id, source.topic, source.partition, source.offset))
        del state.seen[:-SEEN_EVENTS_KEPT]
        return False

    def _transcript(self, room_id: str, next_seq: int) -> Iterator[JSON]:
        return self.store.transcript(room_id, next_seq, self._kept_deleted)

    def _session_jobs(
        self,
        payload_type: PayloadType,
        trigger: str | None,
        room_id: str,
        state: RoomState,
        event: RoomEvent | MessageEvent | None,
        transfer: JSON | None = None,
        messages: list[JSON] | None = None,
        event_id: str | None = None,
        workspace: str | None = None,
    ) -> list[WebhookJob]:
        """A session webhook for each enabled endpoint of the workspace whose triggers
        include `trigger` (None: every enabled one, as `LivechatEdit` goes whatever the
        triggers). The transcript is read once, a body built once per distinct (profile,
        navigation option)."""
        if event is not None:
            event_id, workspace = event.id, event.workspace
        assert event_id is not None
        endpoints = (
            self.directory.enabled(workspace)
            if trigger is None
            else self.directory.wanting(workspace, trigger)
        )
        if not endpoints:
            return []
        transcript: list[JSON] = []  # LeadCapture carries none
        if payload_type != "LeadCapture":
            transcript = (
                messages
                if messages is not None
                else list(self._transcript(room_id, state.next_seq))
            )

        def build(profile: Profile, navigation: bool) -> JSON | None:
            return build_session_payload(
                payload_type,
                state.room or {"_id": room_id},
                state.visitor,
                state.agent,
                transcript,
                crm_data=state.crm_data,
                send_navigation_history=navigation,
                transfer=transfer,
                profile=profile,
                site_url=self.policy.site_url,
            )

        return self._fan_out(payload_type, endpoints, build, room_id, event_id, workspace)

    def _fan_out(
        self,
        payload_type: str,
        endpoints: list[EndpointRecord],
        build: Callable[[Profile, bool], JSON | None],
        room_id: str | None,
        event_id: str,
        workspace: str | None,
    ) -> list[WebhookJob]:
        """A job per endpoint, its body built once per distinct (profile, navigation
        option) by `build` (None: no webhook), and shared by the endpoints alike."""
        bodies: dict[tuple[str, bool], JSON | None] = {}
        encoded: dict[tuple[str, bool], bytes] = {}  # for filters, once per variant
        jobs = []
        for endpoint in endpoints:
            profile = self.directory.profile(endpoint)
            variant = (profile.name, endpoint.navigation_history)
            if variant not in bodies:
                bodies[variant] = build(profile, endpoint.navigation_history)
            body = bodies[variant]
            if body is None:
                continue
            job = self._job(payload_type, body, room_id, event_id, workspace, endpoint)
            if endpoint.filter:
                if variant not in encoded:
                    encoded[variant] = codec.dumps(body)
                # before numbering: a filtered-out webhook leaves no gap in webhook-sequence
                if not self.directory.passes(endpoint, encoded[variant], job.delivery_id):
                    continue
            jobs.append(job)
        return jobs

    def _job(
        self,
        payload_type: str,
        body: JSON,
        room_id: str | None,
        event_id: str,
        workspace: str | None,
        endpoint: EndpointRecord,
    ) -> WebhookJob:
        # The environment's endpoint keeps the delivery ids it always had; each other one
        # gets its own, so replays and retries stay idempotent per receiver.
        name = f"{workspace or ''}/{event_id}/{payload_type}"
        if endpoint.id != DEFAULT_ENDPOINT:
            name += f"/{endpoint.id}"
        return WebhookJob(
            delivery_id=str(uuid.uuid5(DELIVERY_NAMESPACE, name)),
            type=payload_type,
            room_id=room_id,
            url=endpoint.url,
            body=body,
            created_at=iso(self.clock()),
            event_id=event_id,
            workspace=workspace,
            endpoint_id=endpoint.id,
        )

    @staticmethod
    def _numbered(
        state: RoomState, image: BeforeImage | None, jobs: list[WebhookJob]
    ) -> list[WebhookJob]:
        """The record's jobs with the room's next webhook numbers, counted per endpoint (a
        receiver sees 1, 2, 3, ... whichever triggers it wants). Read again after a crash,
        the record numbers from where its first run started (its before-image), whatever
        the saved room state counts: the jobs it makes again are the same webhooks."""
        if not jobs:
            return jobs
        start = None if image is None else image.webhook_counts()
        counts = dict(state.webhooks if start is None else start)
        numbered = []
        closed = False
        for job in jobs:
            endpoint = job.endpoint_id or DEFAULT_ENDPOINT
            counts[endpoint] = counts.get(endpoint, 0) + 1
            # A close is made from every record of its room: its span links to theirs.
            links = tuple(state.traces) if job.type == "LivechatSession" else ()
            closed = closed or bool(links)
            numbered.append(msgspec.structs.replace(job, sequence=counts[endpoint], links=links))
            state.webhooks[endpoint] = max(state.webhooks.get(endpoint, 0), counts[endpoint])
        if closed:
            state.traces = []
        return numbered


MAX_TRACES = 32  # a close links to the last ones of its room's records


def _note_trace(state: RoomState, source: Source) -> None:
    if source.trace is not None and source.trace not in state.traces:  # not twice on a redo
        state.traces = [*state.traces[-(MAX_TRACES - 1) :], source.trace]


def message_webhook_wanted(triggers: tuple[str, ...], profile: Profile, message: JSON) -> bool:
    """Whether an endpoint with these triggers gets a `Message` webhook for `message`."""
    # Rocket.Chat: a message with a token is the visitor's, one without is an agent's.
    by_visitor = "token" in message and message["token"] is not None
    if by_visitor:
        # 2023 servers' afterSaveMessage hook (sendToCRM.js) checks both settings for a
        # visitor message; current ones (sendToCRM.ts) only the visitor's.
        wanted = "visitor_message" in triggers and (
            "agent_message" in triggers or not profile.visitor_message_needs_agent_setting
        )
    else:
        wanted = "agent_message" in triggers
    kind = message.get("t")
    if kind == CLOSING_MESSAGE:
        # 2023: the closing comment is sent through `sendMessage`, whose hook sends it
        # as an agent Message; current servers save it as a system message (closeRoom.ts).
        return wanted and profile.closing_message_webhook
    # Other system messages, page visits included, are saved without the after-save
    # hooks in every era (`Message.saveSystemMessage`): no Message webhook.
    return wanted and kind is None


def crm_data_property(body: str) -> Any:
    """The `data` property of a JSON object answer, or None."""
    try:
        parsed = codec.loads(body)
    except codec.JSONDecodeError:
        return None
    return parsed.get("data") if isinstance(parsed, dict) else None


def _is_here(entry: SeenEntry, event_id: str, source: Source) -> bool:
    return entry.is_at(event_id, source.topic, source.partition, source.offset)


def _seen_entry(state: RoomState, event_id: str, source: Source) -> SeenEntry | None:
    return next((entry for entry in state.seen if _is_here(entry, event_id, source)), None)


def _is_later(record: str, source: Source) -> bool:
    """Whether `record` ("topic:partition:offset") comes after `source` in its partition."""
    topic, partition, offset = record.rsplit(":", 2)
    return (topic, int(partition)) == (source.topic, source.partition) and int(
        offset
    ) > source.offset


class _Start(NamedTuple):
    """A record that is not a duplicate, as it starts: its `seen` entry as found (None the
    first time), the before-image that entry kept (read again after a crash), and the
    before-image to note (the first time)."""

    saved: SeenEntry | None
    image: BeforeImage | None
    first_image: BeforeImage | None


def _before(state: RoomState) -> BeforeImage:
    """What a record may change that its own webhooks show as it was before it: `lm`, the
    transcript's end (`next_seq`), how many emails and phones the visitor had (lead capture
    and `_keep_captured_leads` only append), the message count, and the room's webhook
    counts; the close it completes is added by `_note_completed_close`."""
    emails, phones = _lead_counts(state.visitor)
    return BeforeImage(
        lm=(state.room or {}).get("lm"),
        next_seq=state.next_seq,
        emails=emails,
        phones=phones,
        present=state.present,
        webhooks=dict(state.webhooks),
    )


def _lead_counts(visitor: JSON | None) -> tuple[int | None, int | None]:
    visitor = visitor or {}
    emails, phones = visitor.get("visitorEmails"), visitor.get("phone")
    return (
        len(emails) if isinstance(emails, list) else None,
        len(phones) if isinstance(phones, list) else None,
    )


def _note_before(state: RoomState, event_id: str, source: Source, image: BeforeImage) -> None:
    """Keep `image` in the record's `seen` entry; only the last `BEFORE_IMAGES_KEPT` entries
    keep theirs."""
    last = len(state.seen) - 1
    for n, entry in enumerate(state.seen):
        if _is_here(entry, event_id, source):
            state.seen[n] = msgspec.structs.replace(entry, before=image)
        elif n < last - BEFORE_IMAGES_KEPT and entry.before is not None:
            state.seen[n] = msgspec.structs.replace(entry, before=None)


def _note_completed_close(image: BeforeImage, pending: PendingClose) -> None:
    """Note in a record's before-image the pending close it completed (its job's identity)."""
    image.completed_close = CompletedClose(pending.event_id, pending.workspace, pending.expected)


def _completed_close(image: BeforeImage | None) -> PendingClose | None:
    """The pending close a record's first run completed, if its image noted one."""
    if image is None or image.completed_close is None:
        return None
    done = image.completed_close
    return PendingClose(done.event_id, done.workspace, done.expected, 0.0)


def _set_lm(room: JSON | None, lm: Any) -> None:
    if room is None:
        return
    if lm is None:
        room.pop("lm", None)
    else:
        room["lm"] = lm


def _as_before(state: RoomState, image: BeforeImage, leads: bool = True) -> RoomState:
    """A copy of the room state as the record of `image` found it, as far as its webhooks
    show: `lm`, the transcript's end, the visitor's emails and phones (`leads`)."""
    room = dict(state.room or {})
    _set_lm(room, image.lm)
    visitor = _first_leads(state.visitor, image.emails, image.phones) if leads else state.visitor
    present = state.present if image.present is None else image.present
    return msgspec.structs.replace(
        state,
        room=room,
        visitor=visitor,
        next_seq=min(image.next_seq, state.next_seq),
        present=present,
    )


def _deleted_after(state: RoomState, source: Source) -> Callable[[str], bool]:
    """Whether a delete marker's record comes after `source`'s record, as far as the room
    state knows: applied after it (places in `seen`, which is in application order across
    the room's topics), or not applied at all (a crash kept the marker and lost the room
    state: past the newest offset `seen` has of its partition). A transcript built for
    `source`'s record keeps such a message, as its first run did. Worked out on first use:
    only a transcript that meets a deleted message asks."""
    known: dict[str, Any] = {}

    def later(record: str) -> bool:
        if not known:
            places = {entry.place: n for n, entry in enumerate(state.seen)}
            newest: dict[tuple[str, int], int] = {}
            for entry in state.seen:
                key = (entry.topic, entry.partition)
                newest[key] = max(newest.get(key, -1), entry.offset)
            known.update(places=places, newest=newest,
                         mine=places.get(source_id(source), len(places)))  # fmt: skip
        place = known["places"].get(record)
        if place is not None:
            return bool(place > known["mine"])
        topic, partition, offset = record.rsplit(":", 2)
        newest_offset = known["newest"].get((topic, int(partition)))
        return newest_offset is not None and int(offset) > newest_offset

    return later


def _first_leads(visitor: JSON | None, emails: int | None, phones: int | None) -> JSON | None:
    """The visitor with only its first `emails` emails and `phones` phones (captures append)."""
    if visitor is None:
        return None
    visitor = dict(visitor)
    for name, count in (("visitorEmails", emails), ("phone", phones)):
        if count is None:
            visitor.pop(name, None)
        elif isinstance(visitor.get(name), list):
            visitor[name] = visitor[name][:count]
    return visitor


def _note_place(state: RoomState, event_id: str, source: Source, seq: int) -> None:
    for n, entry in enumerate(state.seen):
        if _is_here(entry, event_id, source):
            state.seen[n] = msgspec.structs.replace(entry, seq=seq)  # keeps its before-image


def _merge_room(stored: JSON | None, incoming: JSON) -> JSON:
    """The event's room replaces the stored one, but keeps the stored `lm` when it has none."""
    room = dict(incoming)
    if "lm" not in room and stored is not None and "lm" in stored:
        room["lm"] = stored["lm"]
    return room


def _keep_captured_leads(stored: JSON | None, incoming: JSON | None) -> JSON | None:
    """A newer visitor document keeps the emails and phones lead capture saved on it."""
    if incoming is None or stored is None:
        return incoming
    visitor = dict(incoming)
    for field_name, entry_key in (("visitorEmails", "address"), ("phone", "phoneNumber")):
        saved = stored.get(field_name)
        if not saved or not isinstance(saved, list):
            continue
        current = visitor.get(field_name)
        # A chat stack may send anything in a document; only a list can take entries.
        current = list(current) if isinstance(current, list) else []
        known = {entry.get(entry_key) for entry in current if isinstance(entry, dict)}
        current += [e for e in saved if isinstance(e, dict) and e.get(entry_key) not in known]
        visitor[field_name] = current
    return visitor
