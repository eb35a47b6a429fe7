import pytest

from streams.leads import (
    InvalidLeadRegex,
    capture_leads,
    compile_lead_patterns,
    is_lead_candidate,
)
from streams.settings import DEFAULT_LEAD_EMAIL_REGEX, DEFAULT_LEAD_PHONE_REGEX

PATTERNS = compile_lead_patterns(DEFAULT_LEAD_EMAIL_REGEX, DEFAULT_LEAD_PHONE_REGEX)
VISITOR = {"_id": "v1", "token": "tok", "visitorEmails": [{"address": "old@example.com"}]}


def test_default_regexes_find_emails_and_phones_as_written() -> None:
    visitor, matched = capture_leads(
        VISITOR, "I'm Ana.B@Example.ORG, call (11) 98765-4321 or 5555-1234", PATTERNS
    )
    assert matched
    assert visitor["visitorEmails"] == [
        {"address": "old@example.com"},
        {"address": "Ana.B@Example.ORG"},
    ]
    assert {"phoneNumber": "5555-1234"} in visitor["phone"]
    assert VISITOR["visitorEmails"] == [{"address": "old@example.com"}]  # input untouched


def test_known_entries_are_not_added_twice() -> None:
    visitor, matched = capture_leads(VISITOR, "old@example.com and old@example.com", PATTERNS)
    assert matched
    assert visitor["visitorEmails"] == [{"address": "old@example.com"}]


def test_nothing_found_changes_nothing() -> None:
    visitor, matched = capture_leads(VISITOR, "hello there, 12 apples", PATTERNS)
    assert not matched and visitor is VISITOR


@pytest.mark.parametrize(
    ("message", "candidate"),
    [
        ({"token": "t", "msg": "a@b.co"}, True),
        ({"msg": "a@b.co"}, False),  # an agent's
        ({"token": "t", "msg": "a@b.co", "editedAt": "x"}, False),
        ({"token": "t", "msg": "a@b.co", "t": "livechat-close"}, False),
    ],
)
def test_only_unedited_plain_visitor_messages_are_read(
    message: dict[str, str], candidate: bool
) -> None:
    assert is_lead_candidate(message) is candidate


def test_invalid_regex_names_the_setting() -> None:
    with pytest.raises(InvalidLeadRegex, match="OMNIHOOKS_LEAD_PHONE_REGEX"):
        compile_lead_patterns(DEFAULT_LEAD_EMAIL_REGEX, "([0-9")
    with pytest.raises(InvalidLeadRegex, match="OMNIHOOKS_LEAD_EMAIL_REGEX"):
        compile_lead_patterns("*bad", DEFAULT_LEAD_PHONE_REGEX)
