"""Each compatibility profile sends what its Rocket.Chat era sends (streams/core/compat.py names
the server file behind each rule): exact bytes for the seed conversation, and the rules that
differ, for files, edits, forwards, leads, CRM answers and retries."""

from __future__ import annotations

from typing import Any

import pytest

from streams.core.compat import ROCKETCHAT_7, ROCKETCHAT_2023, Profile
from streams.core.events import CrmData
from streams.core.payloads import build_message_entry, build_room_part
from streams.core.retry import RetryPolicy, Verdict, next_attempt
from streams.dev import demo
from streams.settings import load_settings
from tests.support.files import GOLDEN
from tests.unit.core.golden_conversation import bodies
from tests.unit.core.test_payloads import AGENT, OPEN_ROOM, VISITOR, agent_says
from tests.unit.core.test_sessions import ROOM, Feed, make, seed_json
from topics import codec
from topics.records import Attempt, WebhookJob

GOLDEN_7 = GOLDEN / "rocketchat-7"


def golden_7(name: str) -> Any:
    return codec.loads((GOLDEN_7 / name).read_bytes())


# -- the seed conversation, byte for byte ----------------------------------------------------


def test_rocketchat_2023_sends_the_seed_bodies_and_the_closing_comment_as_a_message() -> None:
    processor, _, _ = make(send_on_close=True, send_on_agent_message=True)
    message, closing, session = Feed(processor).all(demo.seed_conversation())
    assert codec.dumps(message.body) == codec.dumps(seed_json("message.json"))
    assert codec.dumps(session.body) == codec.dumps(seed_json("livechat-session.json"))
    # sendToCRM.js: the closing comment goes through sendMessage, whose hook sends it
    [entry] = closing.body["messages"]
    assert entry["closingMessage"] is True and entry["msg"] == "Thank you for visiting"
    assert list(closing.body)[:4] == ["_id", "label", "createdAt", "lastMessageAt"]


def test_rocketchat_7_sends_the_current_bodies_key_for_key() -> None:
    # Derived from the seed by the current server's rules (LivechatTyped.ts
    # getLivechatRoomGuestInfo, sendToCRM.ts): no null placeholders, email appended last,
    # `rid` after each message's `ts`, and no Message for the closing comment (closeRoom.ts).
    processor, _, _ = make(send_on_close=True, send_on_agent_message=True, compat="rocketchat-7")
    message, session = Feed(processor).all(demo.seed_conversation())
    assert codec.dumps(message.body) == codec.dumps(golden_7("message.json"))
    assert codec.dumps(session.body) == codec.dumps(golden_7("livechat-session.json"))
    seed = seed_json("message.json")
    assert seed["visitor"]["phone"] is None and "phone" not in message.body["visitor"]


# -- rules that differ by era ----------------------------------------------------------------


@pytest.mark.parametrize(("compat", "sent"), [("rocketchat-2023", False), ("rocketchat-7", True)])
def test_a_visitor_message_alone_needs_the_agent_setting_only_in_2023(compat: str, sent: bool) -> None:  # fmt: skip
    processor, _, _ = make(send_on_visitor_message=True, compat=compat)
    types = [job.type for job in Feed(processor).all(demo.seed_conversation())]
    assert ("Message" in types) is sent


def test_the_agent_part_per_era() -> None:
    agent = {**AGENT, "customFields": {"team": "blue"}}
    room = OPEN_ROOM
    old = build_room_part(room, VISITOR, agent, crm_data=None, profile=ROCKETCHAT_2023)["agent"]
    new = build_room_part(room, VISITOR, agent, crm_data=None, profile=ROCKETCHAT_7)["agent"]
    assert list(old) == ["_id", "username", "name", "email", "customFields"]
    assert list(new) == ["_id", "username", "name", "customFields", "email"]
    no_email = {k: v for k, v in agent.items() if k != "emails"}
    assert build_room_part(room, VISITOR, no_email, crm_data=None, profile=ROCKETCHAT_2023)["agent"]["email"] is None  # fmt: skip
    assert "email" not in build_room_part(room, VISITOR, no_email, crm_data=None, profile=ROCKETCHAT_7)["agent"]  # fmt: skip


def test_the_visitor_contacts_per_era() -> None:
    visitor = {**VISITOR, "phone": [{"phoneNumber": "+331234"}], "livechatData": {"a": "1"}}
    old = build_room_part(OPEN_ROOM, visitor, None, crm_data=None, profile=ROCKETCHAT_2023)
    new = build_room_part(OPEN_ROOM, visitor, None, crm_data=None, profile=ROCKETCHAT_7)
    assert list(old["visitor"])[4:6] == ["email", "phone"]
    assert list(new["visitor"])[-2:] == ["email", "phone"]  # appended last, non-empty only
    bare = {k: v for k, v in VISITOR.items() if k not in ("visitorEmails", "phone")}
    assert "email" not in build_room_part(OPEN_ROOM, bare, None, crm_data=None, profile=ROCKETCHAT_7)["visitor"]  # fmt: skip


def test_an_edit_carries_rid_and_updated_at_only_in_7() -> None:
    edited = agent_says("e1", "2023-02-02T10:21:05.391Z", "fixed", rid=ROOM,
                        editedAt="2023-02-02T10:22:00.000Z", _updatedAt="2023-02-02T10:22:00.001Z")  # fmt: skip
    old = build_message_entry(edited, "guest-3", ROCKETCHAT_2023)
    new = build_message_entry(edited, "guest-3", ROCKETCHAT_7)
    assert list(old) == ["u", "_id", "username", "msg", "ts", "editedAt", "agentId"]
    assert list(new) == ["u", "_id", "username", "msg", "ts", "rid", "editedAt", "agentId", "_updatedAt"]  # fmt: skip


@pytest.mark.parametrize("profile", [ROCKETCHAT_2023, ROCKETCHAT_7])
def test_a_file_gets_its_public_link_from_the_site_url(profile: Profile) -> None:
    upload = {"_id": "f1", "name": "devis final.pdf", "type": "application/pdf", "size": 1234}
    message = agent_says("m1", "2023-02-02T10:21:05.391Z", "", file=upload, attachments=[{"title": "devis"}])  # fmt: skip
    entry = build_message_entry(message, "guest-3", profile, "https://chat.example.com/")
    assert entry["fileUpload"] == {
        "publicFilePath": "https://chat.example.com/file-upload/f1/devis%20final.pdf",
        "type": "application/pdf",
        "size": 1234,
    }
    assert "fileUpload" not in build_message_entry(message, "guest-3", profile)  # no site URL
    keys = list(entry)
    assert keys.index("file") < keys.index("attachments") < keys.index("fileUpload")


@pytest.mark.parametrize("compat", ["rocketchat-2023", "rocketchat-7"])
def test_a_captured_address_shows_from_the_next_webhook_on(compat: str) -> None:
    processor, _, _ = make(send_on_visitor_message=True, send_on_agent_message=True,
                           send_on_lead_capture=True, compat=compat)  # fmt: skip
    feed = Feed(processor)
    feed.all(demo.seed_conversation()[:2])
    lead = demo.message_event(ROOM, "lead-1", "2023-02-02T10:17:00.000Z",
                              "write to new.lead@example.com", True, "e-lead")  # fmt: skip
    message, capture = feed(lead)
    assert (message.type, capture.type) == ("Message", "LeadCapture")
    address = {"address": "new.lead@example.com"}
    assert address not in (message.body["visitor"].get("email") or [])  # built before capture
    assert address in capture.body["visitor"]["email"]


@pytest.mark.parametrize(
    ("compat", "answers", "crm_data"),
    [
        ("rocketchat-2023", ['{"data": {"lead": 7}}'], {"lead": 7}),
        ("rocketchat-2023", ['{"data": {"lead": 7}}', "plain text", ""], {"lead": 7}),
        ("rocketchat-7", ['{"data": {"lead": 7}}'], '{"data": {"lead": 7}}'),
        ("rocketchat-7", ["first", ""], None),  # an empty 200 answer replaces the old value
    ],
)
def test_crm_answers_become_crm_data_per_era(compat: str, answers: list[str], crm_data: Any) -> None:  # fmt: skip
    processor, _, _ = make(send_on_agent_message=True, compat=compat)
    feed = Feed(processor)
    feed.all(demo.seed_conversation()[:2])
    for answer in answers:
        processor.on_crm_data(CrmData(ROOM, answer, "d-1", "2023-02-02T10:17:00.000Z"))
    [job] = feed(demo.seed_conversation()[3])
    assert job.body.get("crmData") == crm_data


def test_a_forward_to_a_department_carries_only_the_old_department() -> None:
    processor, _, _ = make(send_on_forward=True)
    feed = Feed(processor)
    feed.all(demo.seed_conversation()[:2])
    forwarded = demo.room_event(
        ROOM, "forwarded", "2023-02-02T10:20:00.000Z",
        {"_id": ROOM, "fname": "James", "ts": "2023-02-02T10:16:07.230Z", "departmentId": "dep-2"},
        None, "fwd-1", transfer={"oldServedBy": None, "oldDepartmentId": "dep-1"},
    )  # fmt: skip
    [job] = feed(forwarded)
    assert job.body["oldDepartmentId"] == "dep-1" and "oldServedBy" not in job.body


# -- retries ---------------------------------------------------------------------------------


def test_each_profile_has_its_eras_retry_numbers_and_overrides_win() -> None:
    old, new = load_settings(), load_settings(compat="rocketchat-7")
    assert (old.retries, old.retry_delay, old.retry_rule_in_force) == (10, 10.0, "documented")
    assert (new.retries, new.retry_delay, new.retry_rule_in_force) == (4, 20.0, "rocketchat-7")
    assert load_settings(compat="rocketchat-7", http_timeout_ms=1000).retry_delay == 4.0
    mine = load_settings(compat="rocketchat-7", retry_attempts=9, retry_delay_s=3, retry_rule="documented")  # fmt: skip
    assert (mine.retries, mine.retry_delay, mine.retry_rule_in_force) == (9, 3.0, "documented")


@pytest.mark.parametrize(
    ("rule", "status", "error", "verdict"),
    [
        ("documented", 404, None, Verdict.RETRY),
        ("documented", 302, None, Verdict.RETRY),
        ("rocketchat-7", 503, None, Verdict.RETRY),
        ("rocketchat-7", 429, None, Verdict.RETRY),
        ("rocketchat-7", None, "ConnectionRefusedError", Verdict.RETRY),
        ("rocketchat-7", 404, None, Verdict.DEAD),
        ("rocketchat-7", 302, None, Verdict.DEAD),
        ("rocketchat-7", 201, None, Verdict.DEAD),
    ],
)
def test_which_answers_are_retried_per_rule(rule: str, status: int | None, error: str | None, verdict: Verdict) -> None:  # fmt: skip
    job = WebhookJob("d", "Message", "r", "http://crm/", {}, "2024-01-01T00:00:00.000Z")
    attempt = Attempt("2024-01-01T00:00:00.000Z", status, error, 3.0)
    policy = RetryPolicy(retries=4, delay_s=20.0, rule=rule)
    assert next_attempt(job, attempt, policy, now=0.0).verdict is verdict


@pytest.mark.parametrize("compat", ["rocketchat-2023", "rocketchat-7"])
def test_every_webhook_type_of_a_full_conversation_byte_for_byte(compat: str) -> None:
    # tests/unit/golden_conversation.py: a file, a lead, an edit, a department forward, an
    # agent forward, an empty CRM answer, the closing comment, the close, a room edit. The
    # golden files were made by this code and read against the table in README
    # "Compatibility profiles"; any change to a body shows here as a diff.
    golden = (GOLDEN_7.parent / compat / "conversation.json").read_bytes()
    assert codec.dumps(bodies(compat)) == codec.dumps(codec.loads(golden))
    types = [webhook["type"] for webhook in codec.loads(golden)]
    assert set(types) == {"LivechatSessionStart", "LivechatSessionQueued", "LivechatSessionTaken",
                          "Message", "LeadCapture", "LivechatSessionForwarded",
                          "LivechatSession", "LivechatEdit"}  # fmt: skip
