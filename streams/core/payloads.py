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
from urllib.parse import quote

from uaparser import UAParser

from streams.core.compat import ROCKETCHAT_2023, Profile

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
    "LivechatSessionStart": ("departmentId",),  # not in the 2023 profile (see compat.py)
    "LivechatSessionQueued": ("departmentId",),
    "LivechatSessionTaken": ("departmentId", "servedBy"),
    "LivechatSessionForwarded": ("departmentId", "servedBy"),  # + oldServedBy or oldDepartmentId
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


def build_message_entry(
    message: JSON,
    visitor_username: str | None,
    profile: Profile = ROCKETCHAT_2023,
    site_url: str = "",
) -> JSON:
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
    if profile.message_rid_and_updated_at:  # sendToCRM.ts; the seed's samples have neither
        _copy_present(entry, message, ("rid",))
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
        _copy_present(entry, message, ("file", "attachments"))
        upload = message.get("fileUpload") or file_upload(message["file"], site_url)
        if upload is not None:
            entry["fileUpload"] = upload
    if profile.message_rid_and_updated_at:
        _copy_present(entry, message, ("_updatedAt",))
    return entry


def file_upload(file: Any, site_url: str) -> JSON | None:
    """`normalizeMessageFileUpload` (`app/utils/server/functions/normalizeMessageFileUpload.ts`):
    the upload's public link, `<Site_Url>/file-upload/<id>/<encodeURI(name)>`, its type and
    size. Only with OMNIHOOKS_SITE_URL set; the `?token=` JWT Rocket.Chat appends when files
    are protected needs the server's secret and is not made here."""
    if not site_url or not isinstance(file, dict) or "_id" not in file:
        return None
    name = file.get("name")
    path = f"file-upload/{file['_id']}/{_encode_uri(name)}" if name else ""
    upload: JSON = {"publicFilePath": f"{site_url.rstrip('/')}/{path}" if path else ""}
    _copy_present(upload, file, ("type", "size"))
    return upload


def _encode_uri(text: str) -> str:
    # JavaScript's encodeURI leaves these unescaped
    return quote(text, safe=";,/?:@&=+$-_.!~*'()#")


def _transcript(
    messages: Iterable[JSON],
    visitor_username: str | None,
    *,
    send_navigation_history: bool,
    profile: Profile,
    site_url: str,
) -> list[JSON]:
    kept = [m for m in messages if keep_message(m, send_navigation_history=send_navigation_history)]
    kept.sort(key=_ts_order)
    return [build_message_entry(m, visitor_username, profile, site_url) for m in kept]


def _ts_order(message: JSON) -> tuple[bool, str]:
    # Mongo's `sort: { ts: 1 }` puts a missing ts first; ISO-8601 UTC strings sort as times.
    ts = message.get("ts")
    return (ts is not None, "" if ts is None else str(ts))


# -- the room part ---------------------------------------------------------------------------


def build_room_part(
    room: JSON,
    visitor: JSON | None,
    agent: JSON | None,
    *,
    crm_data: Any,
    profile: Profile = ROCKETCHAT_2023,
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
        body["visitor"] = _visitor_part(guest, profile)
    if room.get("servedBy") and agent is not None:
        body["agent"] = _agent_part(agent, profile)
    if crm_data:  # `if (room.crmData)` in every era: an empty answer leaves it out
        body["crmData"] = crm_data
    return body


def _visitor_part(visitor: JSON, profile: Profile) -> JSON:
    part: JSON = {}
    _copy_present(part, visitor, ("_id", "token", "name", "username"))
    emails = _non_empty_list_or_none(visitor.get("visitorEmails"))
    phones = _non_empty_list_or_none(visitor.get("phone"))
    if profile.contacts_as_null:
        # The seed's servers write `email: null, phone: null` here and fill them in when the
        # visitor has some.
        part["email"] = emails
        part["phone"] = phones
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
    if not profile.contacts_as_null:
        # Current servers append them last, only when non-empty.
        if emails is not None:
            part["email"] = emails
        if phones is not None:
            part["phone"] = phones
    return part


def _agent_part(agent: JSON, profile: Profile) -> JSON:
    part: JSON = {}
    _copy_present(part, agent, ("_id", "username", "name"))
    if profile.agent_email_as_null:
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
            part.pop("email", None)  # `emails[0].address` is undefined: JSON.stringify drops it
    return part


# -- whole bodies ----------------------------------------------------------------------------


def build_session_payload(
    payload_type: PayloadType,
    room: JSON,
    visitor: JSON | None,
    agent: JSON | None,
    messages: Iterable[JSON],
    *,
    crm_data: Any,
    send_navigation_history: bool,
    transfer: JSON | None = None,
    profile: Profile = ROCKETCHAT_2023,
    site_url: str = "",
) -> JSON:
    """A room webhook: room part, `type`, the kept messages sorted by ts, the type's fields.

    `transfer` (`oldServedBy`, `oldDepartmentId`) is merged over the room, as Rocket.Chat
    merges it before a `LivechatSessionForwarded`. `LeadCapture` carries no messages.
    """
    body = build_room_part(room, visitor, agent, crm_data=crm_data, profile=profile)
    body["type"] = payload_type
    body["messages"] = (
        []
        if payload_type == "LeadCapture"
        else _transcript(
            messages,
            _username_of(body.get("visitor")),
            send_navigation_history=send_navigation_history,
            profile=profile,
            site_url=site_url,
        )
    )
    extra_fields = _FIELDS_AFTER_MESSAGES.get(payload_type, ())
    if payload_type == "LivechatSessionStart" and not profile.start_has_department:
        extra_fields = ()
    if extra_fields:
        _copy_present(body, {**room, **(transfer or {})}, extra_fields)
    if payload_type == "LivechatSessionForwarded" and transfer:
        # A forward to an agent carries `oldServedBy`, one to a department `oldDepartmentId`
        # (`lib/Helper.ts` forwardRoomToAgent / forwardRoomToDepartment): never both, never
        # a null stand-in for the other.
        for field in ("oldDepartmentId", "oldServedBy"):
            if transfer.get(field) is not None:
                body[field] = transfer[field]
    return body


def build_message_payload(
    room: JSON,
    visitor: JSON | None,
    agent: JSON | None,
    message: JSON,
    *,
    crm_data: Any,
    send_navigation_history: bool,
    profile: Profile = ROCKETCHAT_2023,
    site_url: str = "",
) -> JSON | None:
    """`Message` carrying that one message; None when Rocket.Chat sends none for it.

    Page visits never get one in any era: Rocket.Chat saves them as system messages without
    the after-save hooks (`Message.saveSystemMessage`, `services/messages/service.ts`); they
    appear only in the transcripts of room webhooks.
    """
    if message.get("t") == NAVIGATION_MESSAGE:
        return None
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
        profile=profile,
        site_url=site_url,
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
