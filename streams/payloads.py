"""Rocket.Chat's CRM webhook bodies, built as its `sendToCRM` builds them. Pure: no Kafka, no HTTP.

Documents are Rocket.Chat's own, as plain dicts. Rocket.Chat serialises with `JSON.stringify`,
which drops `undefined`: a key absent from a document is absent from the body, a key sent as
`null` stays `null`. Key order follows Rocket.Chat's object literals and the seed's samples:
the room part is `getLivechatRoomGuestInfo` (2023 servers, the seed's), the messages and the
per-type fields are `sendToCRM` (`apps/meteor/app/livechat/server/hooks/sendToCRM.ts`).
Bodies share nested values (tags, custom fields, files) with the input documents: read-only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, Literal

from uaparser import UAParser

JSON = dict[str, Any]

PayloadType = Literal[
    "LivechatSessionStart",
    "LivechatSessionQueued",
    "LivechatSessionTaken",
    "LivechatSessionForwarded",
    "LivechatSession",
    "LivechatEdit",
    "Message",
    "LeadCapture",
]

CLOSING_MESSAGE = "livechat-close"
NAVIGATION_MESSAGE = "livechat_navigation_history"

# Room document field -> body field, in `getLivechatRoomGuestInfo`'s order (after _id, label).
_ROOM_FIELDS: tuple[tuple[str, str], ...] = (
    ("topic", "topic"),
    ("createdAt", "ts"),
    ("lastMessageAt", "lm"),
    ("tags", "tags"),
    ("customFields", "livechatData"),
)

# `getAdditionalFieldsByType`: what each type adds after `messages`, in this order.
_FIELDS_AFTER_MESSAGES: dict[str, tuple[str, ...]] = {
    "LivechatSessionStart": ("departmentId",),
    "LivechatSessionQueued": ("departmentId",),
    "LivechatSessionTaken": ("departmentId", "servedBy"),
    "LivechatSessionForwarded": ("departmentId", "servedBy", "oldDepartmentId", "oldServedBy"),
    "LivechatSession": ("departmentId", "servedBy", "closedAt", "closedBy", "closer"),
}


# -- visitor's user agent ------------------------------------------------------------------


@lru_cache(maxsize=1024)
def visitor_os_and_browser(user_agent: str) -> tuple[str | None, str | None]:
    """Rocket.Chat's `${name} ${version}` for the OS and the browser; None when no name is found.

    ua-parser-py ports ua-parser-js, the parser Rocket.Chat runs, so the strings are the same
    ("Mac OS 10.15.7", "Chrome 120.0.0.0"). Cached: a visitor's string repeats in every webhook.
    """
    parsed = UAParser(user_agent)
    return _name_and_version(parsed.os), _name_and_version(parsed.browser)


def _name_and_version(found: Mapping[str, Any]) -> str | None:
    # `ua.getOS().name && `${name} ${version}``: no name, no field; a template literal prints
    # a missing version as "undefined".
    name = found.get("name")
    if not name:
        return None
    version = found.get("version")
    return f"{name} {'undefined' if version is None else version}"


# -- messages --------------------------------------------------------------------------------


def keep_message(message: JSON, *, send_navigation_history: bool) -> bool:
    """Rocket.Chat's filter: plain messages, the closing message, and page visits only when
    navigation history is sent; every other system message (`t`) is skipped."""
    kind = message.get("t")
    if not kind:
        return True
    if kind == CLOSING_MESSAGE:
        return True
    return kind == NAVIGATION_MESSAGE and send_navigation_history


def build_message_entry(message: JSON, visitor_username: str | None) -> JSON:
    """One element of `messages`, keys in `sendToCRM`'s order.

    `visitor_username` is the body's `visitor.username`: Rocket.Chat marks a message as an
    agent's (`agentId`) when its author's username differs from it, not by the message `token`.
    """
    author: JSON = message.get("u") or {}
    kind = message.get("t")
    entry: JSON = {}
    _copy_present(entry, message, ("u", "_id"))
    if "username" in author:
        entry["username"] = author["username"]
    if message.get("msg"):
        entry["msg"] = message["msg"]
    elif "blocks" in message:
        # `msg || JSON.stringify(blocks)`: an empty text falls back to the blocks' JSON text
        # (with no blocks at all, JSON.stringify(undefined) leaves `msg` out).
        entry["msg"] = _json_stringify(message["blocks"])
    if _non_empty_list(message.get("blocks")):
        entry["blocks"] = message["blocks"]
    _copy_present(entry, message, ("ts",))
    # Newer servers add `rid` here and `_updatedAt` last; the seed's samples have neither.
    if message.get("editedAt"):
        entry["editedAt"] = message["editedAt"]
    if author.get("username") != visitor_username and "_id" in author:
        entry["agentId"] = author["_id"]
    if kind == NAVIGATION_MESSAGE:
        _copy_present(entry, message, ("navigation",))
    if kind == CLOSING_MESSAGE:
        entry["closingMessage"] = True
    if message.get("file"):
        # `...(message.file && { file, attachments })`: attachments travel only with a file.
        # `fileUpload` (the public link) is computed by Rocket.Chat from its uploads; it passes
        # through when the chat stack sends it.
        _copy_present(entry, message, ("file", "attachments", "fileUpload"))
    return entry


def _transcript(
    messages: Iterable[JSON], visitor_username: str | None, *, send_navigation_history: bool
) -> list[JSON]:
    kept = [m for m in messages if keep_message(m, send_navigation_history=send_navigation_history)]
    kept.sort(key=_ts_order)
    return [build_message_entry(m, visitor_username) for m in kept]


def _ts_order(message: JSON) -> tuple[bool, str]:
    # Mongo's `sort: { ts: 1 }` puts a missing ts first; ISO-8601 UTC strings sort as times.
    ts = message.get("ts")
    return (ts is not None, "" if ts is None else str(ts))


# -- the room part ---------------------------------------------------------------------------


def build_room_part(
    room: JSON, visitor: JSON | None, agent: JSON | None, *, crm_data: str | None
) -> JSON:
    """`getLivechatRoomGuestInfo`: room fields, `visitor`, `agent` while served, `crmData`.

    With no visitor document, the room's `v` stands in (Rocket.Chat looks the visitor up by it).
    """
    body: JSON = {}
    _copy_present(body, room, ("_id",))
    # `room.fname || room.label`
    if room.get("fname"):
        body["label"] = room["fname"]
    else:
        _copy_present(body, room, ("label",))
    for target, source in _ROOM_FIELDS:
        if source in room:
            body[target] = room[source]
    guest = visitor if visitor is not None else room.get("v")
    if isinstance(guest, dict):
        body["visitor"] = _visitor_part(guest)
    if room.get("servedBy") and agent is not None:
        body["agent"] = _agent_part(agent)
    if crm_data:
        body["crmData"] = crm_data
    return body


def _visitor_part(visitor: JSON) -> JSON:
    part: JSON = {}
    _copy_present(part, visitor, ("_id", "token", "name", "username"))
    # The seed's servers write `email: null, phone: null` here and fill them in when the
    # visitor has some (current servers append them last, only when non-empty).
    part["email"] = _non_empty_list_or_none(visitor.get("visitorEmails"))
    part["phone"] = _non_empty_list_or_none(visitor.get("phone"))
    _copy_present(part, visitor, ("department", "ip"))
    user_agent = visitor.get("userAgent")
    if user_agent and isinstance(user_agent, str):
        os_text, browser_text = visitor_os_and_browser(user_agent)
        if os_text is not None:
            part["os"] = os_text
        if browser_text is not None:
            part["browser"] = browser_text
    if "livechatData" in visitor:
        part["customFields"] = visitor["livechatData"]
    return part


def _agent_part(agent: JSON) -> JSON:
    part: JSON = {}
    _copy_present(part, agent, ("_id", "username", "name"))
    # Seed-era servers: `email: null` until the agent's first address fills it in.
    part["email"] = None
    # Rocket.Chat sends only the custom fields marked for integrations, and none when none
    # are: the chat stack sends that selection.
    if agent.get("customFields"):
        part["customFields"] = agent["customFields"]
    emails = agent.get("emails")
    if isinstance(emails, list) and emails:
        first = emails[0]
        if isinstance(first, dict) and "address" in first:
            part["email"] = first["address"]
        else:
            del part["email"]  # `emails[0].address` is undefined: JSON.stringify drops it
    return part


# -- whole bodies ----------------------------------------------------------------------------


def build_session_payload(
    payload_type: PayloadType,
    room: JSON,
    visitor: JSON | None,
    agent: JSON | None,
    messages: Iterable[JSON],
    *,
    crm_data: str | None,
    send_navigation_history: bool,
    transfer: JSON | None = None,
) -> JSON:
    """A room webhook: room part, `type`, the kept messages sorted by ts, the type's fields.

    `transfer` (`oldServedBy`, `oldDepartmentId`) is merged over the room, as Rocket.Chat
    merges it before a `LivechatSessionForwarded`. `LeadCapture` carries no messages.
    """
    body = build_room_part(room, visitor, agent, crm_data=crm_data)
    body["type"] = payload_type
    body["messages"] = (
        []
        if payload_type == "LeadCapture"
        else _transcript(
            messages,
            _username_of(body.get("visitor")),
            send_navigation_history=send_navigation_history,
        )
    )
    extra_fields = _FIELDS_AFTER_MESSAGES.get(payload_type, ())
    if extra_fields:
        _copy_present(body, {**room, **(transfer or {})}, extra_fields)
    return body


def build_message_payload(
    room: JSON,
    visitor: JSON | None,
    agent: JSON | None,
    message: JSON,
    *,
    crm_data: str | None,
    send_navigation_history: bool,
) -> JSON | None:
    """`Message` carrying that one message; None when Rocket.Chat's filter skips it."""
    if not keep_message(message, send_navigation_history=send_navigation_history):
        return None
    return build_session_payload(
        "Message",
        room,
        visitor,
        agent,
        [message],
        crm_data=crm_data,
        send_navigation_history=send_navigation_history,
    )


def build_offline_payload(event: JSON) -> JSON:
    """Rocket.Chat's offline-message body; the form's department and host are not sent."""
    visitor: JSON = {}
    _copy_present(visitor, event, ("name", "email"))
    body: JSON = {"type": "LivechatOfflineMessage", "sentAt": event["ts"], "visitor": visitor}
    _copy_present(body, event, ("message",))
    return body


# -- helpers ---------------------------------------------------------------------------------


def _copy_present(target: JSON, source: Mapping[str, Any], keys: Iterable[str]) -> None:
    """Copy the keys `source` has (null included), in order: absent stays absent."""
    for key in keys:
        if key in source:
            target[key] = source[key]


def _non_empty_list(value: Any) -> bool:
    return isinstance(value, list) and len(value) > 0


def _non_empty_list_or_none(value: Any) -> Any:
    return value if _non_empty_list(value) else None


def _username_of(visitor_part: Any) -> str | None:
    name = visitor_part.get("username") if isinstance(visitor_part, dict) else None
    return name if isinstance(name, str) else None


def _json_stringify(value: Any) -> str:
    """`JSON.stringify(value)`: compact, non-ASCII left as is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
