"""What the workers keep in their changelog-backed tables, as typed records (msgspec).

Each format is read back after a restart or a rebalance, by a worker that may be newer than
the one that wrote it, so every field added later has a default and old values still decode
(tests/unit/topics/test_state_records.py reads values in the formats written before these
records existed).

- `RoomState` (table `rooms`): a room's documents, counters and the records it applied.
  Each applied record has a `SeenEntry`, and the latest ones keep a `BeforeImage`: what the
  record may change that its own webhooks show as it was before it, so a record read again
  after a crash builds the same webhooks as its first run (docs/design/crash-redo.md).
  Entries and images are written as JSON arrays (`array_like`): a room keeps dozens of
  them, and names would double their size.
- `StoredMessage` (table `messages`): a transcript message, its place and the records that
  stored and deleted it.
- `Outcome` (table `settled-jobs`): how a job settled, so a job read twice is POSTed once.
- the numbers parked in the retries topic per room and endpoint (table `delivery-order`).
- `EndpointAlertState` (table `endpoint-alerts`): what the alert agent knows of an
  endpoint's health cluster-wide, so each transition is alerted once.
"""

from __future__ import annotations

from typing import Any

import msgspec

from topics.records import DEFAULT_ENDPOINT

JSON = dict[str, Any]


class CompletedClose(msgspec.Struct, array_like=True):
    """A pending close a record completed: its close job's identity."""

    event_id: str
    workspace: str | None
    expected: int


class BeforeImage(msgspec.Struct, array_like=True):
    """The room as a record found it, as far as that record's webhooks show it. Images
    written before `present`, `completed_close` and `webhooks` existed have 4 to 6 items."""

    lm: Any  # the room's `lm` (None: it had none)
    next_seq: int  # the transcript's end
    emails: int | None  # how many emails and phones the visitor had (captures only append)
    phones: int | None
    present: int | None = None  # messages in the transcript
    completed_close: CompletedClose | None = None
    webhooks: dict[str, int] | int | None = None  # jobs numbered so far per endpoint

    def webhook_counts(self) -> dict[str, int] | None:
        """The room's webhook counts when the record first ran (None: not noted)."""
        return None if self.webhooks is None else webhook_counts(self.webhooks)


class SeenEntry(msgspec.Struct, array_like=True):
    """One record a room applied: the event at its place in Kafka, the transcript place its
    message got, and (for the latest records) its before-image."""

    event_id: str
    topic: str
    partition: int
    offset: int
    seq: int | None = None
    before: BeforeImage | None = None

    def is_at(self, event_id: str, topic: str, partition: int, offset: int) -> bool:
        return (
            self.event_id == event_id
            and self.offset == offset
            and self.partition == partition
            and self.topic == topic
        )

    @property
    def place(self) -> str:
        """`topic:partition:offset`, as stored messages name the records that wrote them."""
        return f"{self.topic}:{self.partition}:{self.offset}"


class PendingClose(msgspec.Struct):
    """A close that waits for the messages the close event says the room holds."""

    event_id: str
    workspace: str | None
    expected: int
    due_at: float


class RoomState(msgspec.Struct, omit_defaults=True):
    room: JSON | None = None
    visitor: JSON | None = None
    agent: JSON | None = None
    crm_data: Any = None  # 7: the answer text; 2023: its `data` property (any JSON)
    next_seq: int = 0  # messages ever stored; their order keys are 0..next_seq-1
    present: int = 0  # messages in the transcript now (deletes take them out)
    closed_at: float | None = None
    pending_close: PendingClose | None = None
    # The last records applied, oldest first.
    seen: list[SeenEntry] = msgspec.field(default_factory=list)
    # The input partition the chat stack's partitioner gave this room. Everything omnihooks
    # writes back for the room (due events, crm-data) goes there, whatever hash it would
    # pick itself: the room's state lives in that partition's changelog.
    partition: int | None = None
    # Webhook jobs numbered so far per endpoint id (the last job's `sequence`). Rooms
    # saved before endpoints existed hold one count, the default endpoint's.
    webhooks: dict[str, int] = msgspec.field(default_factory=dict)
    # Set on the marker an erasure leaves in an erased room's place (nothing else of the
    # room is kept): later records of the room are dropped, not applied.
    erased_at: float | None = None
    erased_by: str | None = None  # the erasure request's id
    # The visitor-rooms index entries (identity digests) this room is under: the visitor's
    # as last indexed, and a marker's until it expires and drops them.
    indexed: list[str] = msgspec.field(default_factory=list)
    # The trace contexts (traceparents) of the records applied since the room's last close,
    # the latest 32, kept only while tracing: the close's span links to them.
    traces: list[str] = msgspec.field(default_factory=list)

    def to_json(self) -> bytes:
        return _encoder.encode(self)

    @classmethod
    def from_json(cls, raw: bytes) -> RoomState:
        try:
            return _decode_room(raw)
        except msgspec.ValidationError:
            # saved before endpoints: `webhooks` was one count, the default endpoint's
            data = _decode_object(raw)
            data["webhooks"] = webhook_counts(data.get("webhooks"))
            return msgspec.convert(data, RoomState)

    @staticmethod
    def nothing_scheduled(raw: bytes) -> bool:
        """Whether a stored room state has neither a pending close nor a close time: only
        those two fields are decoded."""
        found = _decode_schedule(raw)
        return found.pending_close is None and found.closed_at is None

    @property
    def is_closed(self) -> bool:
        return self.closed_at is not None or bool(self.room and "closedAt" in self.room)


class _Schedule(msgspec.Struct):
    pending_close: Any = None
    closed_at: float | None = None


def webhook_counts(stored: Any) -> dict[str, int]:
    if isinstance(stored, int):  # before endpoints: one count, the default endpoint's
        return {DEFAULT_ENDPOINT: stored}
    return dict(stored) if isinstance(stored, dict) else {}


class StoredMessage(msgspec.Struct, omit_defaults=True):
    """A transcript message as stored, with its place and the record that first stored it.
    Messages stored before places were kept are the bare message document."""

    message: JSON = msgspec.field(name="m")
    seq: int | None = None  # its place in the transcript (None: never placed)
    source: str | None = msgspec.field(default=None, name="src")  # "topic:partition:offset"
    # The record that deleted it: out of transcripts, kept as a marker so a delete (or an
    # earlier edit) read again after a crash knows what happened.
    deleted_by: str | None = msgspec.field(default=None, name="del")

    def to_json(self) -> bytes:
        return _encoder.encode(self)

    @classmethod
    def from_json(cls, raw: bytes) -> StoredMessage:
        try:
            return _decode_message(raw)
        except msgspec.ValidationError:
            return cls(_decode_object(raw))  # a bare message document


class Outcome(msgspec.Struct):
    """How a job settled: when, after how many attempts, and whether anything follows."""

    at: float  # epoch seconds
    attempts: int
    final: bool  # delivered or dead-lettered: nothing more will be tried

    def to_json(self) -> bytes:
        return _encoder.encode(self)

    @classmethod
    def from_json(cls, raw: bytes) -> Outcome:
        return _decode_outcome(raw)


def encode_parked(numbers: list[int]) -> bytes:
    """The webhook numbers of a room's jobs parked in the retries topic, for one endpoint."""
    return _encoder.encode(sorted(numbers))


def decode_parked(raw: bytes) -> list[int]:
    return _decode_numbers(raw)


_encoder = msgspec.json.Encoder()
_decode_room = msgspec.json.Decoder(RoomState).decode
_decode_schedule = msgspec.json.Decoder(_Schedule).decode
_decode_message = msgspec.json.Decoder(StoredMessage).decode
_decode_object = msgspec.json.Decoder(JSON).decode
_decode_outcome = msgspec.json.Decoder(Outcome).decode
_decode_numbers = msgspec.json.Decoder(list[int]).decode


class EndpointAlertState(msgspec.Struct, frozen=True):
    """An endpoint URL's health as the alert agent folded it (streams/core/alerts.py)."""

    url: str
    workspace: str | None = None
    endpoint_id: str | None = None
    # the workers whose breaker holds it open, and when each last said so (epoch seconds)
    open_by: dict[str, float] = msgspec.field(default_factory=dict)
    paused: bool = False
    dead_letters: tuple[float, ...] = ()  # when, within the window, newest last
    dead_letters_alerted: bool = False
    reason: str = ""  # the last failure a worker gave

    def to_json(self) -> bytes:
        return _encoder.encode(self)

    @classmethod
    def from_json(cls, raw: bytes) -> EndpointAlertState:
        return _decode_alert_state(raw)


_decode_alert_state = msgspec.json.Decoder(EndpointAlertState).decode
