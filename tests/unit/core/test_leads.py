"""Lead capture alone: Rocket.Chat's default regexes, what is saved on the visitor, which
messages are read, and settings that do not compile."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from streams.core.leads import (
    DEFAULT_EMAIL_REGEX,
    DEFAULT_PHONE_REGEX,
    InvalidLeadRegex,
    capture_leads,
    compile_lead_patterns,
    is_lead_candidate,
)

PATTERNS = compile_lead_patterns(DEFAULT_EMAIL_REGEX, DEFAULT_PHONE_REGEX)
VISITOR: dict[str, Any] = {
    "_id": "v1", "token": "tok", "username": "guest-3",
    "visitorEmails": [{"address": "old@example.com"}],
}  # fmt: skip


def found(text: str) -> tuple[list[Any], list[Any]]:
    visitor, matched = capture_leads({"_id": "v1"}, text, PATTERNS)
    assert matched
    return visitor.get("visitorEmails", []), visitor.get("phone", [])


def test_default_email_regex_keeps_addresses_as_written() -> None:
    emails, phones = found("I'm Ana.B+crm@Example.ORG, or ana@sub.example.co.uk")
    assert emails == [{"address": "Ana.B+crm@Example.ORG"}, {"address": "ana@sub.example.co.uk"}]
    assert phones == []


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        ("call (11) 98765-4321 today", "(11) 98765-4321"),
        ("call 11 98765 4321", "11 98765 4321"),
        ("my number is 5555-1234.", "5555-1234"),
        ("mobile 987654321", "987654321"),
        ("with a no-break space 5555\u00a01234", "5555\u00a01234"),  # JS \s is Unicode
    ],
)
def test_default_phone_regex_finds_rocket_chats_formats(text: str, phone: str) -> None:
    assert found(text)[1] == [{"phoneNumber": phone}]


def test_short_numbers_are_not_phones() -> None:
    visitor, matched = capture_leads(VISITOR, "order 12 apples, room 404, code 1234", PATTERNS)
    assert not matched
    assert visitor is VISITOR


def test_email_word_boundaries_are_ascii_as_in_javascript() -> None:
    # JS \b (no `u` flag) sees "ë" as a non-word character, Python's Unicode \b would not
    assert found("zoëb@example.com")[0] == [{"address": "b@example.com"}]


def test_matches_are_appended_without_duplicates() -> None:
    text = "old@example.com, new@example.com, new@example.com, 5555-1234 or 5555-1234"
    visitor, matched = capture_leads(VISITOR, text, PATTERNS)
    assert matched
    assert visitor["visitorEmails"] == [
        {"address": "old@example.com"},
        {"address": "new@example.com"},
    ]
    assert visitor["phone"] == [{"phoneNumber": "5555-1234"}]


def test_case_differences_are_different_addresses_like_addtoset() -> None:
    visitor, _ = capture_leads(VISITOR, "OLD@example.com", PATTERNS)
    assert visitor["visitorEmails"] == [
        {"address": "old@example.com"},
        {"address": "OLD@example.com"},
    ]


def test_a_known_lead_still_counts_as_a_capture() -> None:
    # Rocket.Chat sends LeadCapture whenever the regexes match, new or not
    visitor, matched = capture_leads(VISITOR, "it's old@example.com", PATTERNS)
    assert matched
    assert visitor == VISITOR


def test_the_visitor_document_is_never_changed_in_place() -> None:
    before = copy.deepcopy(VISITOR)
    visitor, _ = capture_leads(VISITOR, "new@example.com 5555-1234", PATTERNS)
    assert before == VISITOR
    assert visitor is not VISITOR and visitor["visitorEmails"] is not VISITOR["visitorEmails"]


def test_a_phone_match_without_a_digit_is_not_saved_but_is_a_capture() -> None:
    patterns = compile_lead_patterns(DEFAULT_EMAIL_REGEX, r"call me( back)?")
    visitor, matched = capture_leads(VISITOR, "please call me back", patterns)
    assert matched
    assert "phone" not in visitor


def test_an_empty_regex_captures_nothing() -> None:
    patterns = compile_lead_patterns("", "")
    visitor, matched = capture_leads(VISITOR, "new@example.com 5555-1234", patterns)
    assert not matched and visitor is VISITOR


def test_javascript_end_of_input_is_not_before_a_final_newline() -> None:
    patterns = compile_lead_patterns(DEFAULT_EMAIL_REGEX, r"^[0-9]{8}$")
    assert capture_leads({}, "55551234", patterns)[1]
    assert not capture_leads({}, "55551234\n", patterns)[1]


@pytest.mark.parametrize(
    ("message", "candidate"),
    [
        ({"token": "tok", "msg": "a@b.co"}, True),
        ({"msg": "a@b.co"}, False),  # an agent's message
        ({"token": "tok", "msg": "a@b.co", "editedAt": "2023-02-02T10:17:00.000Z"}, False),
        ({"token": "tok", "msg": "a@b.co", "t": "livechat_navigation_history"}, False),
        ({"token": "tok", "msg": "a@b.co", "t": "livechat-close"}, False),
        ({"token": None, "msg": "a@b.co"}, False),
    ],
)
def test_only_unedited_plain_visitor_messages_are_read(
    message: dict[str, Any], candidate: bool
) -> None:
    assert is_lead_candidate(message) is candidate


def test_invalid_regex_names_the_setting_and_the_error() -> None:
    with pytest.raises(InvalidLeadRegex, match=r"OMNIHOOKS_LEAD_PHONE_REGEX .*missing \)"):
        compile_lead_patterns(DEFAULT_EMAIL_REGEX, "([0-9]")
    with pytest.raises(InvalidLeadRegex, match=r"OMNIHOOKS_LEAD_EMAIL_REGEX .*nothing to repeat"):
        compile_lead_patterns("*bad", DEFAULT_PHONE_REGEX)
    assert issubclass(InvalidLeadRegex, ValueError)
