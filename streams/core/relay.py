"""Relay mode: a Rocket.Chat server's own CRM webhooks, received by `omnihooks ingest`, turned
into jobs for the workspace's endpoints, each carrying the body byte for byte.

Rocket.Chat has already chosen what to send (its `Livechat_webhook_on_*` settings); each
endpoint's triggers choose again among those. Which trigger a body answers to is read from
its `type` (`apps/meteor/app/livechat/server/hooks/sendToCRM.ts`: the `type` it posts), and
for a `Message` from its message's `agentId` (set only when the author is not the visitor).

Pure: no Kafka, no HTTP.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from streams.core.endpoints import EndpointDirectory
from topics import codec
from topics.records import DEFAULT_ENDPOINT, EndpointRecord, WebhookJob

# Namespace of relayed delivery ids: uuid5 of (workspace, body digest, endpoint). Rocket.Chat
# posting the same body again (its own retry after a slow answer) makes the same ids, and the
# settled-jobs table sends each once.
RELAY_NAMESPACE = uuid.UUID("1b8f3c2e-5d6a-4f0e-9c7b-72656c617921")

TYPE_TRIGGERS = {
    "LivechatSessionStart": "start",
    "LivechatSessionQueued": "chat_queued",
    "LivechatSessionTaken": "chat_taken",
    "LivechatSessionForwarded": "forward",
    "LivechatSession": "close",
    "LeadCapture": "lead_capture",
    "LivechatOfflineMessage": "offline_msg",
    "LivechatEdit": None,  # every enabled endpoint, as Rocket.Chat sends it whatever the triggers
    "Message": "message",  # visitor_message or agent_message, by the message's author
}


class InvalidBody(ValueError):
    """A body that is not a Rocket.Chat CRM webhook: the reason (HTTP 400)."""


@dataclass(frozen=True)
class Ingested:
    """One accepted body: its workspace, type, room (or visitor email) and raw bytes."""

    workspace: str
    type: str
    key: str  # the room _id; an offline message's visitor email
    body: bytes
    # the room's visitor document (none for an offline message): the erasure index's
    visitor: dict[str, Any] | None = None

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


def read_body(workspace: str, body: bytes) -> Ingested:
    """The body as a webhook to relay, or InvalidBody saying why."""
    try:
        data = codec.loads(body)
    except codec.JSONDecodeError:
        raise InvalidBody("not JSON") from None
    if not isinstance(data, dict):
        raise InvalidBody("not a JSON object")
    kind = data.get("type")
    if kind not in TYPE_TRIGGERS:
        raise InvalidBody(f"unknown type {kind!r}; one of {', '.join(TYPE_TRIGGERS)}")
    if kind == "LivechatOfflineMessage":
        visitor = data.get("visitor")
        key = visitor.get("email") if isinstance(visitor, dict) else None
    else:
        key = data.get("_id")
    if not isinstance(key, str) or not key:
        what = "visitor.email" if kind == "LivechatOfflineMessage" else "_id (the room)"
        raise InvalidBody(f"a {kind} body needs its {what}")
    visitor = data.get("visitor") if kind != "LivechatOfflineMessage" else None
    return Ingested(workspace, kind, key, body, visitor if isinstance(visitor, dict) else None)


def trigger_of(kind: str, data: dict[str, Any]) -> str | None:
    """The endpoint trigger a body answers to (None: every enabled endpoint)."""
    trigger = TYPE_TRIGGERS[kind]
    if trigger != "message":
        return trigger
    messages = data.get("messages") or [{}]
    last = messages[-1] if isinstance(messages[-1], dict) else {}
    return "agent_message" if last.get("agentId") else "visitor_message"


def relay_jobs(
    ingested: Ingested, directory: EndpointDirectory, created_at: str
) -> list[WebhookJob]:
    """One job per enabled endpoint of the workspace that wants the body's trigger."""
    data = codec.loads(ingested.body)
    trigger = trigger_of(ingested.type, data)
    workspace = ingested.workspace
    endpoints = (
        directory.enabled(workspace) if trigger is None else directory.wanting(workspace, trigger)
    )
    room = None if ingested.type == "LivechatOfflineMessage" else ingested.key
    text = ingested.body.decode()
    return [
        WebhookJob(
            delivery_id=delivery_id,
            type=ingested.type,
            room_id=room,
            url=endpoint.url,
            body={},
            created_at=created_at,
            event_id=f"relay:{ingested.digest}",
            workspace=workspace,
            endpoint_id=endpoint.id,
            raw_body=text,
        )
        for endpoint in endpoints
        for delivery_id in (relay_delivery_id(ingested, endpoint),)
        if directory.passes(endpoint, ingested.body, delivery_id)
    ]


def relay_delivery_id(ingested: Ingested, endpoint: EndpointRecord) -> str:
    name = f"{ingested.workspace}/{ingested.digest}"
    if endpoint.id != DEFAULT_ENDPOINT:
        name += f"/{endpoint.id}"
    return str(uuid.uuid5(RELAY_NAMESPACE, name))
