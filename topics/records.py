"""The records omnihooks writes: webhook jobs, attempts, dead letters, rejected input, the
CRM's answers (crm-data) and the internal events it writes onto the rooms topic.

Frozen msgspec Structs, encoded as JSON objects in field order. Fields added later get
defaults, so records written by older workers stay readable; a record that is not of its
type raises `msgspec.ValidationError` (a `ValueError`) naming the field.
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec
from msgspec.structs import replace

JSON = dict[str, Any]


class Attempt(msgspec.Struct, frozen=True):
    """One POST of a job: when, the answer (status or error class), how long it took."""

    at: str
    status: int | None
    error: str | None
    duration_ms: float
    response_excerpt: str | None = None
    # A probe of an endpoint that was down (streams/core/breaker.py): on the record, but the
    # endpoint's failure, not the job's, so it never counts against the job's retries.
    probe: bool = False


class WebhookJob(msgspec.Struct, frozen=True):
    """One webhook to send. `delivery_id` is stable across retries and replays."""

    delivery_id: str
    type: str
    room_id: str | None
    url: str
    body: JSON
    created_at: str
    event_id: str | None = None
    workspace: str | None = None
    attempts: tuple[Attempt, ...] = ()
    due_at: str | None = None  # set while the job waits in the retries topic
    replay_id: str | None = None  # set when an operator replayed it from the dead letters
    # The partition of the room's input records: its crm-data must land there too, even when
    # the chat stack's partitioner hashes keys differently from ours.
    room_partition: int | None = None
    # When an endpoint that was down (or paused) first held this job; cleared by its next
    # attempt. Held longer than OMNIHOOKS_BREAKER_MAX_HOLD_S, it spends its attempts again.
    held_since: str | None = None
    # The room's webhook number: 1 for its first job, one more for each job after, whatever
    # its type; sent as `webhook-sequence`, so a receiver can tell a gap from a delay.
    sequence: int | None = None
    # The endpoint (`endpoints` topic, in the job's workspace) it is for; "default" is the
    # one the environment settings describe. Its token and secrets are looked up when it is
    # sent, so they never sit in a job, a retry or a dead letter.
    endpoint_id: str | None = None
    # Relay mode: the body exactly as Rocket.Chat posted it (JSON text), sent as is; `body`
    # is then empty.
    raw_body: str | None = None
    # An operator's replay to a URL of their choosing (`dlq replay --url`): kept, even when
    # the job's endpoint has moved since.
    url_pinned: bool = False
    # The W3C trace context it carries on to the CRM (streams/tracing.py): the input
    # record's, or the span of this job when tracing.
    traceparent: str | None = None
    # Made by many records (a close): their trace contexts, for its span's links; dropped
    # once its span is made, so no job on a topic carries them.
    links: tuple[str, ...] = ()

    def key(self) -> bytes:
        return (self.room_id or self.delivery_id).encode()

    def to_json(self) -> bytes:
        return _encode(self)

    def with_attempt(self, attempt: Attempt, due_at: str | None) -> WebhookJob:
        return replace(self, attempts=(*self.attempts, attempt), due_at=due_at, held_since=None)

    @classmethod
    def from_json(cls, raw: bytes) -> WebhookJob:
        return _decode_job(raw)


class DeadLetter(msgspec.Struct, frozen=True):
    """A job whose attempts are exhausted: the job and every attempt made."""

    job: WebhookJob
    attempts: tuple[Attempt, ...]
    dead_lettered_at: str
    reason: str

    def key(self) -> bytes:
        return self.job.key()

    def to_json(self) -> bytes:
        return _encode(self)

    @classmethod
    def from_json(cls, raw: bytes) -> DeadLetter:
        return _decode_dead_letter(raw)


class RejectedRecord(msgspec.Struct, frozen=True):
    """An input record that could not be used, with its original bytes and the reason."""

    reason: str
    topic: str
    partition: int
    offset: int
    rejected_at: str
    key_b64: str | None
    value_b64: str | None
    value_text: str | None = None  # the value again when it is UTF-8, for people
    headers: dict[str, str] = msgspec.field(default_factory=dict)

    @classmethod
    def of(
        cls,
        reason: str,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        rejected_at: str,
        text_limit: int = 65536,
    ) -> RejectedRecord:
        text = None
        if value is not None and len(value) <= text_limit:
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        return cls(
            reason=reason,
            topic=topic,
            partition=partition,
            offset=offset,
            rejected_at=rejected_at,
            key_b64=_b64(key),
            value_b64=_b64(value),
            value_text=text,
        )

    def original_value(self) -> bytes | None:
        return None if self.value_b64 is None else base64.b64decode(self.value_b64)

    def to_json(self) -> bytes:
        return _encode(self)

    @classmethod
    def from_json(cls, raw: bytes) -> RejectedRecord:
        return _decode_rejected(raw)


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


class CrmDataRecord(msgspec.Struct, frozen=True):
    """A CRM's 200 answer for a room (`crm-data`), fed back into its state as `crmData`."""

    room_id: str
    body: str  # raw text, as Rocket.Chat keeps it
    delivery_id: str
    received_at: str

    def to_json(self) -> bytes:
        return _encode(self)


class EndpointControl(msgspec.Struct, frozen=True):
    """An operator's word on an endpoint URL (`endpoint-controls`, keyed by the URL): paused
    holds its jobs, losslessly, until a later record resumes it."""

    url: str
    paused: bool
    at: str
    reason: str = ""

    def to_json(self) -> bytes:
        return _encode(self)

    @classmethod
    def from_json(cls, raw: bytes) -> EndpointControl:
        return _decode_control(raw)


class HealthEvent(msgspec.Struct, frozen=True):
    """A fact about an endpoint's health (`endpoint-health`, one partition, keyed by the
    endpoint URL or the worker): what the alert agent folds into once-per-transition alerts.

    `opened`/`closed`: a worker's breaker for `url` opened or closed; `dead_letter`: a job
    for `url` was dead-lettered; `paused`/`resumed`: an operator's control (forwarded from
    `endpoint-controls`); `heartbeat`: the worker is alive and `open` are the URLs its
    breakers hold open (so a worker that died holding one open is not believed forever)."""

    kind: str
    worker: str
    at: float  # seconds since the epoch, at the worker
    url: str = ""
    workspace: str | None = None
    endpoint_id: str | None = None
    reason: str = ""
    open: tuple[str, ...] = ()
    started: float = 0.0  # heartbeat: when the worker (this life of it) started

    def to_json(self) -> bytes:
        return _encode(self)

    @classmethod
    def from_json(cls, raw: bytes) -> HealthEvent:
        return _decode_health(raw)


class ErasureReceipt(msgspec.Struct, frozen=True):
    """What one partition's owner erased for an erasure request (`erasures`, keyed by the
    erasure id): the rooms (ids only) and how many of their messages went."""

    erasure_id: str
    partition: int
    rooms: tuple[str, ...]
    messages: int
    at: str
    topic: str = "rooms"  # whose partition: rooms, or rocketchat-webhooks (relay mode's rooms)

    def to_json(self) -> bytes:
        return _encode(self)

    @classmethod
    def from_json(cls, raw: bytes) -> ErasureReceipt:
        return _decode_receipt(raw)


class IngestedRecord(msgspec.Struct, frozen=True):
    """A Rocket.Chat webhook body `omnihooks ingest` accepted (`rocketchat-webhooks`, keyed
    by room _id, an offline message by the visitor's email): the text exactly as posted."""

    workspace: str
    type: str
    received_at: str
    body: str

    def to_json(self) -> bytes:
        return _encode(self)

    @classmethod
    def from_json(cls, raw: bytes) -> IngestedRecord:
        return _decode_ingested(raw)


DEFAULT_WORKSPACE = "default"  # an input event without a `workspace` belongs to this one
# The environment's endpoint (OMNIHOOKS_WEBHOOK_URL) in every workspace's list.
DEFAULT_ENDPOINT = "default"


class SigningSecret(msgspec.Struct, frozen=True):
    """A Standard Webhooks secret; `expires_at` set once a newer one replaced it: until then
    both sign (rotation's grace period)."""

    secret: str
    created_at: str
    expires_at: str | None = None


class OAuth2Client(msgspec.Struct, frozen=True):
    """OAuth2 client credentials (RFC 6749 4.4) for a receiver: the token is fetched from
    `token_url` and sent as `Authorization: Bearer`."""

    token_url: str
    client_id: str
    client_secret: str
    scope: str = ""
    audience: str = ""  # sent as `audience` where the token server wants one (Auth0, Okta)


class ClientTls(msgspec.Struct, frozen=True):
    """mTLS toward a receiver: a client certificate and key (PEM), and the CA bundle (PEM)
    its certificate is checked against (empty: the system's)."""

    certificate: str = ""
    key: str = ""
    ca: str = ""


class EndpointRecord(msgspec.Struct, frozen=True):
    """One CRM (or any receiver) of a workspace (`endpoints`, keyed `workspace/id`; a
    tombstone removes it). Optional fields left None take the worker's settings."""

    workspace: str
    id: str
    url: str
    created_at: str
    updated_at: str
    token: str = ""  # sent as X-RocketChat-Livechat-Token
    secrets: tuple[SigningSecret, ...] = ()  # newest first
    triggers: tuple[str, ...] = ()  # names in streams.core.endpoints.TRIGGERS
    navigation_history: bool = False
    compat: str | None = None
    retry_attempts: int | None = None
    retry_delay_s: float | None = None
    timeout_ms: int | None = None
    concurrency: int | None = None
    enabled: bool = True
    # Whether its 200 answers become the room's crmData (Rocket.Chat keeps its one CRM's
    # answer): off unless asked, so a warehouse's answers never reach the CRM's bodies.
    crm_answers: bool = False
    # jq programs over the webhook body (streams/core/expressions.py): whether this endpoint
    # gets a webhook (when the job is made), and the request made of it (at each attempt).
    filter: str = ""
    template: str = ""
    # How the receiver knows it is us, beyond the Livechat token: static headers (an API
    # key), basic auth ("user:password"), OAuth2 client credentials, a client certificate.
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    basic_auth: str = ""
    oauth2: OAuth2Client | None = None
    tls: ClientTls | None = None
    # An operators' alert endpoint (streams/core/alerts.py), never a CRM: "all" gets the
    # alerts about every workspace's endpoints, "workspace" those of its own workspace.
    alerts: str = ""

    def key(self) -> bytes:
        return endpoint_key(self.workspace, self.id)

    def to_json(self) -> bytes:
        return _encode(self)

    @classmethod
    def from_json(cls, raw: bytes) -> EndpointRecord:
        return _decode_endpoint(raw)


class WorkspaceRecord(msgspec.Struct, frozen=True):
    """A workspace that has endpoints (`workspaces`, keyed by its name; a tombstone once it
    has none): what the ingest server knows of endpoints, without their secrets."""

    workspace: str
    endpoints: int
    updated_at: str

    def to_json(self) -> bytes:
        return _encode(self)


def endpoint_key(workspace: str, endpoint_id: str) -> bytes:
    return f"{workspace}/{endpoint_id}".encode()


# omnihooks.erase: `omnihooks erase` asks each partition's owner to erase a visitor (`ref`:
# the identity digests, comma-separated; `room_id` and the key: the erasure id)
INTERNAL_EVENTS = ("omnihooks.close-due", "omnihooks.expire", "omnihooks.erase")


class InternalRoomRecord(msgspec.Struct, frozen=True):
    """What omnihooks' timer writes onto the rooms topic, in the room's partition: a close
    past its grace (`omnihooks.close-due`, `ref` the close event) or a room past retention
    (`omnihooks.expire`). Timers cannot change Faust tables; the sessions agent can."""

    id: str
    event: str
    ts: str
    room_id: str
    ref: str | None

    def to_json(self) -> bytes:
        return _encode(self)


_encode = msgspec.json.Encoder().encode
_decode_job = msgspec.json.Decoder(WebhookJob).decode
_decode_dead_letter = msgspec.json.Decoder(DeadLetter).decode
_decode_rejected = msgspec.json.Decoder(RejectedRecord).decode
_decode_control = msgspec.json.Decoder(EndpointControl).decode
_decode_ingested = msgspec.json.Decoder(IngestedRecord).decode
_decode_endpoint = msgspec.json.Decoder(EndpointRecord).decode
_decode_health = msgspec.json.Decoder(HealthEvent).decode
_decode_receipt = msgspec.json.Decoder(ErasureReceipt).decode
