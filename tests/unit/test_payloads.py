"""The payload core alone: each type's fields, Rocket.Chat's message filter, absent vs null."""

from __future__ import annotations

from typing import Any

import pytest

from streams.payloads import (
    build_message_entry,
    build_offline_payload,
    build_room_part,
    build_session_payload,
    keep_message,
    visitor_os_and_browser,
)

ROOM: dict[str, Any] = {
    "_id": "r1", "fname": "James", "ts": "2023-02-02T10:16:07.230Z", "departmentId": "dep-1",
    "servedBy": {"_id": "a1", "username": "user1", "ts": "2023-02-02T10:16:07.375Z"},
}  # fmt: skip
VISITOR: dict[str, Any] = {"_id": "v1", "token": "tok", "name": "James", "username": "guest-3"}
AGENT: dict[str, Any] = {"_id": "a1", "username": "user1", "name": "User One",
                         "emails": [{"address": "u1@example.com"}]}  # fmt: skip


def msg(mid: str, ts: str, by_visitor: bool = True, **extra: Any) -> dict[str, Any]:
    author = VISITOR if by_visitor else AGENT
    message = {"_id": mid, "rid": "r1", "msg": mid, "ts": ts,
               "u": {"_id": author["_id"], "username": author["username"], "name": author["name"]}}  # fmt: skip
    if by_visitor:
        message["token"] = "tok"
    message.update(extra)
    return message


def session(kind: Any, room: dict[str, Any] = ROOM, **kwargs: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"crm_data": None, "send_navigation_history": False}
    values.update(kwargs)
    messages = values.pop("messages", [])
    return build_session_payload(kind, room, VISITOR, AGENT, messages, **values)


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("LivechatSessionStart", ["departmentId"]),
        ("LivechatSessionQueued", ["departmentId"]),
        ("LivechatSessionTaken", ["departmentId", "servedBy"]),
        ("LivechatEdit", []),
        ("Message", []),
    ],
)
def test_each_type_adds_its_own_fields_after_messages(kind: str, extra: list[str]) -> None:
    body = session(kind)
    keys = list(body)
    assert keys[keys.index("messages") + 1 :] == extra
    assert body["type"] == kind


def test_forward_adds_the_old_agent_and_department() -> None:
    body = session(
        "LivechatSessionForwarded",
        transfer={
            "oldServedBy": {"_id": "a0", "username": "old", "ts": "t"},
            "oldDepartmentId": None,
        },
    )
    assert list(body)[-4:] == ["departmentId", "servedBy", "oldDepartmentId", "oldServedBy"]
    assert body["oldDepartmentId"] is None
    assert body["oldServedBy"]["username"] == "old"


def test_close_adds_closing_fields_and_keeps_only_what_the_room_has() -> None:
    room = {
        **ROOM,
        "closedAt": "c",
        "closedBy": {"_id": "a1", "username": "user1"},
        "closer": "user",
    }
    del room["departmentId"]
    body = session("LivechatSession", room)
    assert list(body)[-4:] == ["servedBy", "closedAt", "closedBy", "closer"]
    assert "departmentId" not in body


def test_messages_are_filtered_and_sorted_like_rocket_chat() -> None:
    messages = [
        msg("late", "2023-02-02T10:20:00.000Z"),
        msg("early", "2023-02-02T10:10:00.000Z"),
        msg("joined", "2023-02-02T10:11:00.000Z", t="uj"),
        msg("close", "2023-02-02T10:30:00.000Z", by_visitor=False, t="livechat-close"),
        msg("visit", "2023-02-02T10:05:00.000Z", t="livechat_navigation_history",
            navigation={"page": {"title": "Home"}}),
    ]  # fmt: skip
    ids = [m["_id"] for m in session("LivechatSession", messages=messages)["messages"]]
    assert ids == ["early", "late", "close"]
    with_nav = session("LivechatSession", messages=messages, send_navigation_history=True)
    assert with_nav["messages"][0]["_id"] == "visit"
    assert with_nav["messages"][0]["navigation"] == {"page": {"title": "Home"}}


def test_message_entry_marks_agents_and_the_closing_message() -> None:
    entry = build_message_entry(msg("c", "t", by_visitor=False, t="livechat-close"), "guest-3")
    assert list(entry) == ["u", "_id", "username", "msg", "ts", "agentId", "closingMessage"]
    assert entry["agentId"] == "a1" and entry["closingMessage"] is True
    assert "agentId" not in build_message_entry(msg("v", "t"), "guest-3")


def test_empty_text_falls_back_to_the_blocks_json() -> None:
    blocks = [{"type": "section", "text": {"type": "plain_text", "text": "Pick one"}}]
    entry = build_message_entry(msg("b", "t", msg="", blocks=blocks), "guest-3")
    assert entry["msg"] == '[{"type":"section","text":{"type":"plain_text","text":"Pick one"}}]'
    assert entry["blocks"] == blocks


def test_edited_and_file_messages_carry_their_extras() -> None:
    file = {"_id": "f1", "name": "cv.pdf", "type": "application/pdf"}
    entry = build_message_entry(
        msg("f", "t", editedAt="e", file=file, attachments=[{"title": "cv.pdf"}]), "guest-3"
    )
    assert entry["editedAt"] == "e"
    assert entry["file"] == file and entry["attachments"] == [{"title": "cv.pdf"}]


def test_absent_fields_stay_absent_and_null_stays_null() -> None:
    part = build_room_part({"_id": "r1", "topic": None}, VISITOR, None, crm_data=None)
    assert part["topic"] is None
    assert "tags" not in part and "lastMessageAt" not in part and "label" not in part
    assert "agent" not in part and "crmData" not in part
    assert part["visitor"]["email"] is None and part["visitor"]["phone"] is None


def test_label_falls_back_to_the_room_label() -> None:
    assert (
        build_room_part({"_id": "r", "label": "Ana"}, VISITOR, None, crm_data=None)["label"]
        == "Ana"
    )


def test_agent_appears_only_while_the_room_is_served() -> None:
    unserved = {k: v for k, v in ROOM.items() if k != "servedBy"}
    assert "agent" not in build_room_part(unserved, VISITOR, AGENT, crm_data=None)
    agent = build_room_part(ROOM, VISITOR, AGENT, crm_data=None)["agent"]
    assert agent == {
        "_id": "a1",
        "username": "user1",
        "name": "User One",
        "email": "u1@example.com",
    }
    with_fields = build_room_part(
        ROOM, VISITOR, {**AGENT, "customFields": {"team": "b"}}, crm_data=None
    )
    assert with_fields["agent"]["customFields"] == {"team": "b"}


def test_crm_data_is_echoed_when_known() -> None:
    body = session("Message", crm_data='{"contactId": "c-1"}')
    assert body["crmData"] == '{"contactId": "c-1"}'
    assert list(body).index("crmData") < list(body).index("type")


def test_visitor_details_come_from_the_visitor_document() -> None:
    visitor = {**VISITOR, "department": "d1", "ip": "203.0.113.7",
               "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
                            "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
               "livechatData": {"plan": "pro"}, "visitorEmails": [{"address": "j@example.com"}],
               "phone": [{"phoneNumber": "555-1234"}]}  # fmt: skip
    part = build_room_part(ROOM, visitor, None, crm_data=None)["visitor"]
    assert list(part) == ["_id", "token", "name", "username", "email", "phone", "department",
                          "ip", "os", "browser", "customFields"]  # fmt: skip
    assert part["os"] == "Mac OS 10.15.7" and part["browser"] == "Chrome 120.0.0.0"
    assert part["email"] == [{"address": "j@example.com"}]


def test_os_and_browser_print_like_a_js_template_literal() -> None:
    assert visitor_os_and_browser("curl/8.0") == (None, None)
    # an OS name without a version, and no browser at all
    assert visitor_os_and_browser("SomeBot/1.0 (Linux)") == ("Linux undefined", None)


def test_keep_message_rules() -> None:
    assert keep_message({"t": "livechat-close"}, send_navigation_history=False)
    assert not keep_message({"t": "livechat_navigation_history"}, send_navigation_history=False)
    assert keep_message({"t": "livechat_navigation_history"}, send_navigation_history=True)
    assert not keep_message({"t": "command"}, send_navigation_history=True)
    assert keep_message({}, send_navigation_history=False)


def test_offline_message_body_is_exactly_rocket_chats() -> None:
    body = build_offline_payload({"ts": "2023-02-02T10:00:00.000Z", "name": "Ana",
                                  "email": "ana@example.com", "message": "Call me",
                                  "department": "sales", "host": "https://shop"})  # fmt: skip
    assert body == {"type": "LivechatOfflineMessage", "sentAt": "2023-02-02T10:00:00.000Z",
                    "visitor": {"name": "Ana", "email": "ana@example.com"}, "message": "Call me"}  # fmt: skip
    assert list(body) == ["type", "sentAt", "visitor", "message"]
