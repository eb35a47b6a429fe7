"""A conversation that exercises every webhook type and every era rule, for the per-profile
golden files (`tests/golden/<profile>/conversation.json`): start, queue, take, a file, a
lead, an agent answer, an edit, a forward to a department, a forward to an agent, an empty
CRM answer, the closing comment and the close, and a room edit after it."""

from __future__ import annotations

from typing import Any

from streams.core.events import CrmData
from streams.core.leads import compile_lead_patterns
from streams.dev import demo
from streams.settings import load_settings
from tests.support.memory_store import MemoryStore
from tests.support.sessions import processor_for
from tests.unit.core.test_sessions import Clock, Feed

ROOM = "golden-room"
SITE = "https://chat.example.com"


def _room(**extra: Any) -> dict[str, Any]:
    return {"_id": ROOM, "fname": "James", "ts": "2024-03-01T09:00:00.000Z",
            "departmentId": "sales", "tags": ["web"], "livechatData": {"plan": "pro"},
            "v": {"_id": demo.VISITOR["_id"], "token": demo.VISITOR["token"]}, **extra}  # fmt: skip


AGENT_2 = {"_id": "agent-2", "username": "user2", "name": "User Two",
           "customFields": {"team": "blue"}, "emails": [{"address": "two@example.com"}]}  # fmt: skip
SERVED_1 = {"_id": demo.AGENT["_id"], "username": "user1", "ts": "2024-03-01T09:00:05.000Z"}
SERVED_2 = {"_id": "agent-2", "username": "user2", "ts": "2024-03-01T09:05:00.000Z"}


def records() -> list[demo.InputRecord | tuple[str, str]]:
    ev, msg = demo.room_event, demo.message_event
    upload = {"_id": "file-1", "name": "devis final.pdf", "type": "application/pdf", "size": 2048}
    return [
        ev(ROOM, "started", "2024-03-01T09:00:00.000Z", _room(), None, "g-1"),
        ev(ROOM, "queued", "2024-03-01T09:00:01.000Z", _room(), None, "g-2"),
        ev(ROOM, "taken", "2024-03-01T09:00:05.000Z", _room(servedBy=SERVED_1), demo.AGENT, "g-3"),
        msg(ROOM, "m-file", "2024-03-01T09:01:00.000Z", "", True, "g-4", rid=ROOM,
            file=upload, attachments=[{"title": "devis final.pdf", "type": "file"}],
            _updatedAt="2024-03-01T09:01:00.100Z"),
        msg(ROOM, "m-lead", "2024-03-01T09:02:00.000Z", "call me on 0612345678", True, "g-5",
            rid=ROOM, _updatedAt="2024-03-01T09:02:00.100Z"),
        ("crm", ""),  # the CRM answered a webhook with an empty 200
        msg(ROOM, "m-answer", "2024-03-01T09:03:00.000Z", "Sure", False, "g-6", rid=ROOM,
            _updatedAt="2024-03-01T09:03:00.100Z"),
        msg(ROOM, "m-answer", "2024-03-01T09:03:00.000Z", "Sure, tomorrow", False, "g-7",
            rid=ROOM, editedAt="2024-03-01T09:03:30.000Z", _updatedAt="2024-03-01T09:03:30.100Z"),
        ev(ROOM, "forwarded", "2024-03-01T09:04:00.000Z", _room(departmentId="support", servedBy=SERVED_1),
           demo.AGENT, "g-8", transfer={"oldDepartmentId": "sales", "oldServedBy": None}),
        ev(ROOM, "forwarded", "2024-03-01T09:05:00.000Z", _room(departmentId="support", servedBy=SERVED_2),
           AGENT_2, "g-9", transfer={"oldServedBy": SERVED_1, "oldDepartmentId": None}),
        msg(ROOM, "m-close", "2024-03-01T09:06:00.000Z", "Bye", False, "g-10", rid=ROOM,
            t="livechat-close", _updatedAt="2024-03-01T09:06:00.100Z",
            u={"_id": "agent-2", "username": "user2", "name": "User Two"}),
        ev(ROOM, "closed", "2024-03-01T09:06:00.000Z",
           _room(departmentId="support", servedBy=SERVED_2, msgs=4, lm="2024-03-01T09:03:00.000Z",
                 closedAt="2024-03-01T09:06:00.000Z", closer="user",
                 closedBy={"_id": "agent-2", "username": "user2"}), AGENT_2, "g-11"),
        ev(ROOM, "updated", "2024-03-01T09:10:00.000Z",
           _room(departmentId="support", servedBy=SERVED_2, topic="quote", closedAt="2024-03-01T09:06:00.000Z"),
           AGENT_2, "g-12"),
    ]  # fmt: skip


def bodies(compat: str) -> list[dict[str, Any]]:
    """Every webhook of the conversation under `compat`, in order: {type, body}."""
    settings = load_settings(
        webhook_url="http://crm.test/hook", compat=compat, site_url=SITE, send_on_start=True,
        send_on_chat_queued=True, send_on_chat_taken=True, send_on_forward=True,
        send_on_close=True, send_on_visitor_message=True, send_on_agent_message=True,
        send_on_lead_capture=True,
    )  # fmt: skip
    leads = compile_lead_patterns(settings.lead_email_regex, settings.lead_phone_regex)
    processor = processor_for(settings, MemoryStore(), leads, Clock())
    feed = Feed(processor)
    out = []
    for record in records():
        if isinstance(record, tuple):
            processor.on_crm_data(CrmData(ROOM, record[1], "d-crm", "2024-03-01T09:02:01.000Z"))
            continue
        out += [{"type": job.type, "body": job.body} for job in feed(record)]
    return out
