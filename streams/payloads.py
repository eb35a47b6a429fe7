"""Rocket.Chat's webhook bodies, built as `sendToCRM` builds them. Pure: no Kafka, no HTTP.

Documents are the plain dicts the chat stack sent. Rocket.Chat serialises with
`JSON.stringify`, which drops `undefined`: a field absent from the document is absent from the
body, a field sent as `null` stays `null`. Key order follows Rocket.Chat's object literals
(and the seed's samples).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any, Literal

from uaparser import UAParser

from topics import codec

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

CLOSING = "livechat-close"
NAVIGATION = "livechat_navigation_history"

# Per type: which room/transfer fields follow `messages`, in Rocket.Chat's order.
_EXTRA_FIELDS: dict[str, tuple[str, ...]] = {
    "LivechatSessionStart": ("departmentId",),
    "LivechatSessionQueued": ("departmentId",),
    "LivechatSessionTaken": ("departmentId", "servedBy"),
    "LivechatSessionForwarded": ("departmentId", "servedBy", "oldDepartmentId", "oldServedBy"),
    "LivechatSession": ("departmentId", "servedBy", "closedAt", "closedBy", "closer"),
}
_TRANSFER_FIELDS = frozenset({"oldDepartmentId", "oldServedBy"})


def _js(value: Any) -> str:
    """A value in a JS template literal: a missing one prints as 'undefined'."""
    return "undefined" if value is None else str(value)


@lru_cache(maxsize=4096)
def visitor_os_and_browser(user_agent: str) -> tuple[str | None, str | None]:
    """Rocket.Chat's `${name} ${version}` for OS and browser (absent when no name is found).

    ua-parser-py ports ua-parser-js, the parser Rocket.Chat runs, so the strings match it
    ("Mac OS 10.15.7", "Chrome 120.0.0.0"). Cached: a visitor's agent string repeats in every
    webhook of the room.
    """
    parsed = UAParser(user_agent)
    os_info, browser = parsed.os, parsed.browser
    os_text = f"{os_info['name']} {_js(os_info.get('version'))}" if os_info.get("name") else None
    browser_text = (
        f"{browser['name']} {_js(browser.get('version'))}" if browser.get("name") else None
    )
    return os_text, browser_text


def keep_message(message: JSON, *, send_navigation_history: bool) -> bool:
    """Rocket.Chat's filter: plain messages, the closing message, and page visits only when
    navigation history is sent."""
    kind = message.get("t")
    if not kind:
        return True
    if kind == CLOSING:
        return True
    return kind == NAVIGATION and send_navigation_history


def build_message_entry(message: JSON, visitor_username: str | None) -> JSON:
    """One element of `messages`."""
    author = message.get("u") or {}
    entry: JSON = {
        "u": {k: author[k] for k in ("_id", "username", "name") if k in author},
        "_id": message["_id"],
    }
    if "username" in author:
        entry["username"] = author["username"]
    text = message.get("msg")
    if text:
        entry["msg"] = text
    elif message.get("blocks"):
        # msg || JSON.stringify(blocks): an empty text falls back to the blocks' JSON
        entry["msg"] = codec.dumps(message["blocks"]).decode()
    elif "msg" in message:
        entry["msg"] = text
    if "ts" in message:
        entry["ts"] = message["ts"]
    if message.get("blocks"):
        entry["blocks"] = message["blocks"]
    if message.get("editedAt"):
        entry["editedAt"] = message["editedAt"]
    # Rocket.Chat compares usernames: whoever is not the room's visitor is an agent.
    is_visitor = (
        author.get("username") == visitor_username
        if visitor_username is not None
        else bool(message.get("token"))
    )
    if not is_visitor and "_id" in author:
        entry["agentId"] = author["_id"]
    if message.get("t") == NAVIGATION and "navigation" in message:
        entry["navigation"] = message["navigation"]
    if message.get("t") == CLOSING:
        entry["closingMessage"] = True
    if message.get("file"):
        entry["file"] = message["file"]
        if "attachments" in message:
            entry["attachments"] = message["attachments"]
    elif message.get("attachments"):
        entry["attachments"] = message["attachments"]
    return entry


def _visitor_part(visitor: JSON) -> JSON:
    part: JSON = {}
    for key in ("_id", "token", "name", "username"):
        if key in visitor:
            part[key] = visitor[key]
    # Like the seed's samples: null when the visitor has none.
    part["email"] = visitor.get("visitorEmails") or None
    part["phone"] = visitor.get("phone") or None
    for key in ("department", "ip"):
        if key in visitor:
            part[key] = visitor[key]
    user_agent = visitor.get("userAgent")
    if user_agent:
        os_text, browser_text = visitor_os_and_browser(user_agent)
        if os_text is not None:
            part["os"] = os_text
        if browser_text is not None:
            part["browser"] = browser_text
    if "livechatData" in visitor:
        part["customFields"] = visitor["livechatData"]
    return part


def _agent_part(agent: JSON) -> JSON:
    part: JSON = {key: agent[key] for key in ("_id", "username", "name") if key in agent}
    emails = agent.get("emails") or []
    first = emails[0] if emails and isinstance(emails[0], dict) else {}
    part["email"] = first.get("address")
    if agent.get("customFields"):
        part["customFields"] = agent["customFields"]
    return part


def build_room_part(
    room: JSON, visitor: JSON | None, agent: JSON | None, *, crm_data: str | None
) -> JSON:
    """The fields every room webhook starts with."""
    body: JSON = {"_id": room["_id"]}
    label = room.get("fname") or room.get("label")
    if label is not None or "fname" in room or "label" in room:
        body["label"] = label
    for target, source in (
        ("topic", "topic"),
        ("createdAt", "ts"),
        ("lastMessageAt", "lm"),
        ("tags", "tags"),
        ("customFields", "livechatData"),
    ):
        if source in room:
            body[target] = room[source]
    who = visitor if visitor is not None else room.get("v")
    if who is not None:
        body["visitor"] = _visitor_part(who)
    if room.get("servedBy") and agent is not None:
        body["agent"] = _agent_part(agent)
    if crm_data:
        body["crmData"] = crm_data
    return body


def _visitor_username(visitor: JSON | None, room: JSON) -> str | None:
    source = visitor if visitor is not None else room.get("v") or {}
    name = source.get("username")
    return name if isinstance(name, str) else None


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
    """A room webhook: room part, type, the kept messages sorted by ts, per-type fields."""
    body = build_room_part(room, visitor, agent, crm_data=crm_data)
    body["type"] = payload_type
    username = _visitor_username(visitor, room)
    kept = [m for m in messages if keep_message(m, send_navigation_history=send_navigation_history)]
    kept.sort(key=lambda m: str(m.get("ts", "")))
    body["messages"] = [build_message_entry(m, username) for m in kept]
    for name in _EXTRA_FIELDS.get(payload_type, ()):
        source = transfer if name in _TRANSFER_FIELDS else room
        if source is not None and name in source:
            body[name] = source[name]
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
    """`Message` with that one message; None when Rocket.Chat's filter drops it."""
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
    """Exactly Rocket.Chat's offline-message body: department and host are not sent."""
    return {
        "type": "LivechatOfflineMessage",
        "sentAt": event["ts"],
        "visitor": {"name": event["name"], "email": event["email"]},
        "message": event["message"],
    }
