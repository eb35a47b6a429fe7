"""Rocket.Chat's webhook bodies from plain documents: the seed's golden samples (key order
included), each type's fields, the message filter, absent vs null."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from streams.core.compat import ROCKETCHAT_7, ROCKETCHAT_2023, Profile
from streams.core.payloads import (
    build_message_entry,
    build_message_payload,
    build_offline_payload,
    build_room_part,
    build_session_payload,
    keep_message,
    visitor_os_and_browser,
)
from tests.support.files import SEED

VISITOR_ID = "63db8d4990fe6eda42ad429a"
TOKEN = "e36e352c742eee48860d576fcefb372afc44ebc95750fa1e3b646195f702341a"
AGENT_ID = "aXjjcPwq4Pcp7xftH"
ROOM_ID = "Tc5SyBZHovD4k8BXv"
MAC_CHROME = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)

# The documents as the chat stack's input events carry them (Rocket.Chat's own, extra
# fields included: they must not leak into the body).
VISITOR: dict[str, Any] = {
    "_id": VISITOR_ID, "token": TOKEN, "name": "James", "username": "guest-3", "status": "online",
    "ts": "2023-02-02T10:16:05.000Z", "_updatedAt": "2023-02-02T10:16:07.000Z",
    "visitorEmails": [{"address": "fongang.rodrique+local-on@rocket.chat"}],
}  # fmt: skip
AGENT: dict[str, Any] = {
    "_id": AGENT_ID, "username": "user1", "name": "User One", "status": "online",
    "roles": ["user", "livechat-agent"], "emails": [{"address": "uaser1@mail.com", "verified": False}],
    "customFields": {},
}  # fmt: skip
SERVED_BY = {"_id": AGENT_ID, "username": "user1", "ts": "2023-02-02T10:16:07.375Z"}
OPEN_ROOM: dict[str, Any] = {
    "_id": ROOM_ID, "t": "l", "fname": "James", "msgs": 1, "open": True,
    "ts": "2023-02-02T10:16:07.230Z", "lm": "2023-02-02T10:16:09.615Z",
    "v": {"_id": VISITOR_ID, "token": TOKEN, "username": "guest-3", "status": "online"},
    "servedBy": SERVED_BY, "_updatedAt": "2023-02-02T10:16:09.700Z",
}  # fmt: skip
CLOSED_ROOM: dict[str, Any] = {
    **OPEN_ROOM, "open": False, "msgs": 4, "lm": "2023-02-02T10:22:14.087Z", "tags": ["self"],
    "closedAt": "2023-02-02T10:23:11.344Z", "closedBy": {"_id": AGENT_ID, "username": "user1"},
    "closer": "user",
}  # fmt: skip


def visitor_says(mid: str, ts: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"_id": mid, "rid": ROOM_ID, "msg": text, "ts": ts, "token": TOKEN,
            "u": {"_id": VISITOR_ID, "username": "guest-3", "name": "James"},
            "_updatedAt": ts, **extra}  # fmt: skip


def agent_says(mid: str, ts: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"_id": mid, "rid": ROOM_ID, "msg": text, "ts": ts,
            "u": {"_id": AGENT_ID, "username": "user1", "name": "User One"},
            "_updatedAt": ts, **extra}  # fmt: skip


HI = visitor_says("2untSdndqBP7opGWw", "2023-02-02T10:16:09.615Z", "Hi")
HELP = agent_says("7xjkw8ZFitMSNGmeJ", "2023-02-02T10:21:05.391Z", "How can I help you today?")
THANKS = visitor_says("y7p77YFfkHJeg5gD9", "2023-02-02T10:22:14.087Z", "don't worry,thank you")
CLOSING = agent_says(
    "ciAggDuN8ioqDrTby", "2023-02-02T10:23:11.437Z", "Thank you for visiting", t="livechat-close"
)
JOINED = agent_says("joinMsg", "2023-02-02T10:16:07.400Z", "user1", t="uj")
PAGE_VISIT = visitor_says(
    "navMsg", "2023-02-02T10:16:08.000Z", "", t="livechat_navigation_history",
    navigation={"page": {"change": "url", "title": "Pricing",
                         "location": {"href": "https://shop.example.com/pricing"}}, "token": TOKEN},
)  # fmt: skip


def load_seed(name: str) -> dict[str, Any]:
    with open(SEED / name, encoding="utf-8") as seed:
        loaded: dict[str, Any] = json.load(seed)
    return loaded


def key_order(value: Any) -> Any:
    """The value's keys, recursively and in order: equal dicts can still differ here."""
    if isinstance(value, dict):
        return [(key, key_order(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [key_order(item) for item in value]
    return None


def assert_same_body(body: dict[str, Any] | None, expected: dict[str, Any]) -> None:
    assert body == expected
    assert key_order(body) == key_order(expected)
    assert orjson.dumps(body) == orjson.dumps(expected)


def session(kind: Any, room: dict[str, Any] = OPEN_ROOM, **options: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "visitor": VISITOR, "agent": AGENT, "messages": [], "crm_data": None,
        "send_navigation_history": False, **options,
    }  # fmt: skip
    visitor, agent, messages = values.pop("visitor"), values.pop("agent"), values.pop("messages")
    return build_session_payload(kind, room, visitor, agent, messages, **values)


def tail_after_messages(body: dict[str, Any]) -> list[str]:
    keys = list(body)
    return keys[keys.index("messages") + 1 :]


# -- golden samples --------------------------------------------------------------------------


def test_close_body_matches_the_seed_sample_key_for_key() -> None:
    # out of order, with a join message and a page visit the filter must drop
    transcript = [CLOSING, THANKS, JOINED, HI, PAGE_VISIT, HELP]
    body = session("LivechatSession", CLOSED_ROOM, messages=transcript)
    assert_same_body(body, load_seed("livechat-session.json"))


def test_message_body_matches_the_seed_sample_key_for_key() -> None:
    body = build_message_payload(
        OPEN_ROOM, VISITOR, AGENT, HELP, crm_data=None, send_navigation_history=False
    )
    assert_same_body(body, load_seed("message.json"))


# -- each type's fields ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "profile", "tail"),
    [
        # sendToCRM.js (2023) misspells the Start case `LivechatSessionStarted`: no department
        ("LivechatSessionStart", ROCKETCHAT_2023, []),
        ("LivechatSessionStart", ROCKETCHAT_7, ["departmentId"]),
        ("LivechatSessionQueued", ROCKETCHAT_2023, ["departmentId"]),
        ("LivechatSessionQueued", ROCKETCHAT_7, ["departmentId"]),
    ],
)
def test_start_and_queued_add_the_department(kind: str, profile: Profile, tail: list[str]) -> None:
    queued = {k: v for k, v in OPEN_ROOM.items() if k != "servedBy"} | {"departmentId": "sales"}
    body = session(kind, queued, agent=None, messages=[HI], profile=profile)
    assert body["type"] == kind
    assert tail_after_messages(body) == tail
    assert "agent" not in body
    assert [m["_id"] for m in body["messages"]] == [HI["_id"]]


def test_start_without_a_department_leaves_it_out() -> None:
    body = session("LivechatSessionStart", OPEN_ROOM)
    assert tail_after_messages(body) == []


def test_taken_adds_the_department_and_the_serving_agent() -> None:
    body = session("LivechatSessionTaken", {**OPEN_ROOM, "departmentId": "sales"}, messages=[HI])
    assert tail_after_messages(body) == ["departmentId", "servedBy"]
    assert body["servedBy"] == SERVED_BY
    assert body["agent"] == {"_id": AGENT_ID, "username": "user1", "name": "User One",
                             "email": "uaser1@mail.com"}  # fmt: skip


def test_forward_to_an_agent_adds_the_previous_agent_only() -> None:
    # Helper.ts forwardRoomToAgent sets oldServedBy alone: a null oldDepartmentId beside it
    # is not sent (every era).
    old = {"_id": "a0", "username": "user0", "ts": "2023-02-02T10:16:07.000Z"}
    body = session(
        "LivechatSessionForwarded", {**OPEN_ROOM, "departmentId": "sales"},
        transfer={"oldServedBy": old, "oldDepartmentId": None},
    )  # fmt: skip
    assert tail_after_messages(body) == ["departmentId", "servedBy", "oldServedBy"]
    assert body["oldServedBy"] == old


def test_forward_to_a_department_adds_the_previous_department_only() -> None:
    room = {**OPEN_ROOM, "departmentId": "support"}
    body = session("LivechatSessionForwarded", room, transfer={"oldDepartmentId": "sales"})
    assert tail_after_messages(body) == ["departmentId", "servedBy", "oldDepartmentId"]
    assert body["departmentId"] == "support" and body["oldDepartmentId"] == "sales"


def test_close_carries_the_closing_message_and_the_closing_fields() -> None:
    body = session("LivechatSession", CLOSED_ROOM, messages=[HI, CLOSING])
    assert tail_after_messages(body) == ["servedBy", "closedAt", "closedBy", "closer"]
    closing = body["messages"][-1]
    assert closing["closingMessage"] is True and closing["agentId"] == AGENT_ID
    assert list(closing) == ["u", "_id", "username", "msg", "ts", "agentId", "closingMessage"]


def test_edit_carries_the_transcript_and_no_extra_fields() -> None:
    body = session("LivechatEdit", {**CLOSED_ROOM, "departmentId": "sales"}, messages=[HELP, HI])
    assert body["type"] == "LivechatEdit"
    assert tail_after_messages(body) == []
    assert [m["_id"] for m in body["messages"]] == [HI["_id"], HELP["_id"]]


def test_lead_capture_carries_no_messages() -> None:
    body = session("LeadCapture", messages=[HI, HELP])
    assert body["messages"] == []
    assert tail_after_messages(body) == []


def test_visitor_message_has_no_agent_id_and_agent_message_has_one() -> None:
    def only_message(message: dict[str, Any]) -> dict[str, Any]:
        body = build_message_payload(
            OPEN_ROOM, VISITOR, AGENT, message, crm_data=None, send_navigation_history=False
        )
        assert body is not None and body["type"] == "Message"
        assert tail_after_messages(body) == []
        [entry] = body["messages"]
        return entry

    assert list(only_message(HI)) == ["u", "_id", "username", "msg", "ts"]
    assert only_message(HELP)["agentId"] == AGENT_ID


def test_agent_id_follows_the_username_like_rocket_chat() -> None:
    # sendToCRM compares `u.username` with the visitor's, not the message's token
    no_token = {k: v for k, v in HI.items() if k != "token"}
    assert "agentId" not in build_message_entry(no_token, "guest-3")
    assert build_message_entry(HI, "guest-4")["agentId"] == VISITOR_ID


def test_offline_message_body_is_exactly_rocket_chats() -> None:
    event = {"id": "evt-03", "event": "offline_message", "ts": "2023-02-02T11:00:00.000Z",
             "name": "Ana", "email": "ana@example.com", "message": "Call me back",
             "department": "sales-id", "host": "https://shop.example.com"}  # fmt: skip
    body = build_offline_payload(event)
    assert_same_body(body, {"type": "LivechatOfflineMessage", "sentAt": "2023-02-02T11:00:00.000Z",
                            "visitor": {"name": "Ana", "email": "ana@example.com"},
                            "message": "Call me back"})  # fmt: skip


# -- the message filter and each message -------------------------------------------------------


def test_filter_keeps_plain_and_closing_messages_and_page_visits_only_when_enabled() -> None:
    assert keep_message(HI, send_navigation_history=False)
    assert keep_message(CLOSING, send_navigation_history=False)
    assert not keep_message(PAGE_VISIT, send_navigation_history=False)
    assert keep_message(PAGE_VISIT, send_navigation_history=True)
    assert not keep_message(JOINED, send_navigation_history=True)
    assert not keep_message({**HI, "t": "command"}, send_navigation_history=True)


def test_transcript_is_filtered_and_sorted_by_ts() -> None:
    transcript = [CLOSING, THANKS, JOINED, HI, PAGE_VISIT, HELP]
    without = session("LivechatSession", CLOSED_ROOM, messages=transcript)
    assert [m["_id"] for m in without["messages"]] == [
        HI["_id"], HELP["_id"], THANKS["_id"], CLOSING["_id"],
    ]  # fmt: skip
    with_visits = session(
        "LivechatSession", CLOSED_ROOM, messages=transcript, send_navigation_history=True
    )
    visit = with_visits["messages"][0]
    assert visit["_id"] == "navMsg"
    assert visit["navigation"] == PAGE_VISIT["navigation"]
    assert "msg" not in visit  # empty text and no blocks: JSON.stringify(undefined)


def test_filtered_message_gives_no_message_webhook() -> None:
    # Page visits are saved without the after-save hooks in every era: never a Message
    # webhook, even with navigation history on (they are in room transcripts then).
    for message, navigation in ((JOINED, True), (PAGE_VISIT, False), (PAGE_VISIT, True)):
        body = build_message_payload(
            OPEN_ROOM, VISITOR, AGENT, message, crm_data=None, send_navigation_history=navigation
        )
        assert body is None
    close = session("LivechatSession", OPEN_ROOM, messages=[HI, PAGE_VISIT],
                    send_navigation_history=True)  # fmt: skip
    visits = [m for m in close["messages"] if "navigation" in m]
    assert [v["navigation"] for v in visits] == [PAGE_VISIT["navigation"]]


def test_empty_text_falls_back_to_the_blocks_json_text() -> None:
    blocks = [{"type": "section", "text": {"type": "plain_text", "text": "Choisissez: café"}}]
    entry = build_message_entry(agent_says("b1", "t", "", blocks=blocks), "guest-3")
    # JSON.stringify: compact, non-ASCII as is
    assert (
        entry["msg"]
        == '[{"type":"section","text":{"type":"plain_text","text":"Choisissez: café"}}]'
    )
    assert entry["blocks"] == blocks
    assert list(entry) == ["u", "_id", "username", "msg", "blocks", "ts", "agentId"]


def test_empty_blocks_are_not_sent_but_still_stand_in_for_the_text() -> None:
    entry = build_message_entry(agent_says("b2", "t", "", blocks=[]), "guest-3")
    assert entry["msg"] == "[]"
    assert "blocks" not in entry
    with_text = build_message_entry(agent_says("b3", "t", "Hello", blocks=[]), "guest-3")
    assert with_text["msg"] == "Hello" and "blocks" not in with_text


def test_edited_message_carries_edited_at() -> None:
    edited = {**HI, "msg": "Hi!", "editedAt": "2023-02-02T10:17:00.000Z",
              "editedBy": {"_id": VISITOR_ID, "username": "guest-3"}}  # fmt: skip
    entry = build_message_entry(edited, "guest-3")
    assert list(entry) == ["u", "_id", "username", "msg", "ts", "editedAt"]
    assert entry["editedAt"] == "2023-02-02T10:17:00.000Z"


def test_file_message_carries_file_and_attachments() -> None:
    file = {"_id": "f1", "name": "cv.pdf", "type": "application/pdf"}
    attachments = [{"title": "cv.pdf", "title_link": "/file-upload/f1/cv.pdf"}]
    entry = build_message_entry(
        visitor_says("f", "t", "", file=file, attachments=attachments), "guest-3"
    )
    assert entry["file"] == file and entry["attachments"] == attachments
    assert list(entry)[-2:] == ["file", "attachments"]


def test_attachments_without_a_file_are_not_sent() -> None:
    # `...(message.file && { file, attachments })`: quotes and link previews stay out
    entry = build_message_entry(HI | {"attachments": [{"text": "quoted"}]}, "guest-3")
    assert "attachments" not in entry and "file" not in entry


def test_message_entry_leaves_out_rid_and_updated_at_like_the_seed() -> None:
    entry = build_message_entry(HI, "guest-3")
    assert "rid" not in entry and "_updatedAt" not in entry and "token" not in entry


# -- the room part -----------------------------------------------------------------------------


def test_absent_fields_stay_absent_and_null_stays_null() -> None:
    room = {"_id": "r1", "topic": None, "tags": None, "ts": "2023-02-02T10:00:00.000Z"}
    visitor = {"_id": "v1", "username": "guest-9", "livechatData": None}
    part = build_room_part(room, visitor, None, crm_data=None)
    assert list(part) == ["_id", "topic", "createdAt", "tags", "visitor"]
    assert part["topic"] is None and part["tags"] is None
    assert part["visitor"] == {"_id": "v1", "username": "guest-9", "email": None, "phone": None,
                               "customFields": None}  # fmt: skip


def test_label_is_the_room_fname_else_its_label() -> None:
    def label(room: dict[str, Any]) -> Any:
        part = build_room_part({"_id": "r", **room}, VISITOR, None, crm_data=None)
        return part.get("label", "absent")

    assert label({"fname": "James", "label": "Jim"}) == "James"
    assert label({"fname": "", "label": "Jim"}) == "Jim"
    assert label({"label": None}) is None
    assert label({"fname": ""}) == "absent"


def test_room_custom_fields_and_topic_are_sent() -> None:
    room = {**OPEN_ROOM, "topic": "billing", "livechatData": {"order": "A-1"}, "tags": ["vip"]}
    part = build_room_part(room, VISITOR, AGENT, crm_data=None)
    assert list(part) == ["_id", "label", "topic", "createdAt", "lastMessageAt", "tags",
                          "customFields", "visitor", "agent"]  # fmt: skip
    assert part["customFields"] == {"order": "A-1"}


def test_visitor_details_in_rocket_chats_order() -> None:
    visitor = {**VISITOR, "department": "sales", "ip": "203.0.113.7", "userAgent": MAC_CHROME,
               "livechatData": {"plan": "pro"}, "phone": [{"phoneNumber": "+55 11 98765-4321"}]}  # fmt: skip
    part = build_room_part(OPEN_ROOM, visitor, None, crm_data=None)["visitor"]
    assert list(part) == ["_id", "token", "name", "username", "email", "phone", "department",
                          "ip", "os", "browser", "customFields"]  # fmt: skip
    assert part["os"] == "Mac OS 10.15.7" and part["browser"] == "Chrome 120.0.0.0"
    assert part["phone"] == [{"phoneNumber": "+55 11 98765-4321"}]
    assert part["email"] == VISITOR["visitorEmails"]


def test_visitor_without_emails_or_phones_sends_null() -> None:
    visitor = {**VISITOR, "visitorEmails": [], "phone": None}
    part = build_room_part(OPEN_ROOM, visitor, None, crm_data=None)["visitor"]
    assert part["email"] is None and part["phone"] is None


def test_visitor_without_a_user_agent_has_no_os_or_browser() -> None:
    part = build_room_part(OPEN_ROOM, VISITOR, None, crm_data=None)["visitor"]
    assert "os" not in part and "browser" not in part
    unknown = build_room_part(
        OPEN_ROOM, {**VISITOR, "userAgent": "curl/8.4.0"}, None, crm_data=None
    )
    assert "os" not in unknown["visitor"] and "browser" not in unknown["visitor"]


def test_without_a_visitor_document_the_rooms_v_stands_in() -> None:
    part = build_room_part(OPEN_ROOM, None, None, crm_data=None)
    assert part["visitor"] == {"_id": VISITOR_ID, "token": TOKEN, "username": "guest-3",
                               "email": None, "phone": None}  # fmt: skip


def test_os_and_browser_print_like_a_js_template_literal() -> None:
    assert visitor_os_and_browser(MAC_CHROME) == ("Mac OS 10.15.7", "Chrome 120.0.0.0")
    assert visitor_os_and_browser("curl/8.4.0") == (None, None)
    # a name with no version prints "undefined"; ua-parser-js reads Linux's arch as its version
    assert visitor_os_and_browser("SomeBot/1.0 (Linux)") == ("Linux undefined", None)
    linux = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
    assert visitor_os_and_browser(linux) == ("Linux x86_64", "Firefox 121.0")


def test_agent_appears_only_while_the_room_is_served() -> None:
    unserved = {k: v for k, v in OPEN_ROOM.items() if k != "servedBy"}
    assert "agent" not in build_room_part(unserved, VISITOR, AGENT, crm_data=None)
    assert "agent" not in build_room_part(OPEN_ROOM, VISITOR, None, crm_data=None)


def test_agent_email_is_the_first_address_else_null() -> None:
    two = {**AGENT, "emails": [{"address": "first@example.com"}, {"address": "second@example.com"}]}
    assert (
        build_room_part(OPEN_ROOM, VISITOR, two, crm_data=None)["agent"]["email"]
        == "first@example.com"
    )
    none = {k: v for k, v in AGENT.items() if k != "emails"}
    assert build_room_part(OPEN_ROOM, VISITOR, none, crm_data=None)["agent"]["email"] is None


def test_agent_custom_fields_only_when_it_has_some() -> None:
    assert "customFields" not in build_room_part(OPEN_ROOM, VISITOR, AGENT, crm_data=None)["agent"]
    with_fields = {**AGENT, "customFields": {"team": "blue"}}
    agent = build_room_part(OPEN_ROOM, VISITOR, with_fields, crm_data=None)["agent"]
    assert list(agent) == ["_id", "username", "name", "email", "customFields"]
    assert agent["customFields"] == {"team": "blue"}


def test_crm_data_is_echoed_only_when_known() -> None:
    body = session("LivechatSessionTaken", crm_data='{"contactId":"c-1"}')
    assert body["crmData"] == '{"contactId":"c-1"}'
    assert list(body)[list(body).index("crmData") + 1] == "type"  # after visitor and agent
    assert "crmData" not in session("LivechatSessionTaken")
    assert "crmData" not in session("LivechatSessionTaken", crm_data="")


def test_inputs_are_not_changed() -> None:
    before = orjson.dumps([CLOSED_ROOM, VISITOR, AGENT, HI, HELP, CLOSING])
    session("LivechatSession", CLOSED_ROOM, messages=[CLOSING, HELP, HI])
    assert orjson.dumps([CLOSED_ROOM, VISITOR, AGENT, HI, HELP, CLOSING]) == before
