"""Endpoint filters and templates (jq): what matches, what a template makes, and how a
program that does not compile or fails on a body is told."""

from __future__ import annotations

import pytest

from streams.core.endpoints import FILTER_ERRORS, EndpointDirectory, EndpointError, validate
from streams.core.expressions import ExpressionError, Request, check, matches, position, render
from topics import codec
from topics.records import EndpointRecord

CLOSE = codec.dumps({"type": "LivechatSession", "_id": "r1", "tags": ["sales", "vip"],
                     "visitor": {"email": [{"address": "ann@example.com"}]},
                     "departmentId": "sales", "messages": [{"msg": "hi"}]})  # fmt: skip


def endpoint(**fields: object) -> EndpointRecord:
    return EndpointRecord("default", "crm", "http://crm.example/hook", "t", "t", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("program", "expected"),
    [
        ('.type == "LivechatSession"', True),
        ('.departmentId == "support"', False),
        ('.tags | index("vip") != null', True),
        ('.visitor.email[0].address | endswith("@example.com")', True),
        (".nothing", False),  # null is no match
        ("empty", False),  # no output is no match
        ('select(.type == "Message")', False),
    ],
)
def test_a_filter_matches_when_its_first_output_is_true(program: str, expected: bool) -> None:
    assert matches(program, CLOSE) is expected


def test_a_template_makes_the_body_method_path_and_headers() -> None:
    made = render(
        '{method: "PUT", path: "/notes?room=\\(._id)", headers: {"X-Kind": .type},'
        " body: {room: ._id, transcript: (.messages | length)}}",
        CLOSE,
    )
    assert made == Request(b'{"room":"r1","transcript":1}', "PUT", "/notes?room=r1",
                           {"X-Kind": "LivechatSession"})  # fmt: skip


@pytest.mark.parametrize(
    ("program", "reason"),
    [
        ("{room: ._id}", "an object with a body"),
        ('{body: ., method: "GET"}', "method 'GET'"),
        ('{body: ., path: "notes"}', "starting with / or ?"),
        ("{body: ., headers: {a: 1}}", "an object of strings"),
        ("{body: ., extra: 1}", "unknown key(s) extra"),
        (".tags[] | {body: .}", "not one request"),
        ("{body: (.type + 1)}", "template failed: string"),
    ],
)
def test_a_template_that_makes_no_request_says_why(program: str, reason: str) -> None:
    with pytest.raises(ExpressionError, match=None) as caught:
        render(program, CLOSE)
    assert reason in str(caught.value)


def test_a_program_that_does_not_compile_says_where() -> None:
    with pytest.raises(ExpressionError) as caught:
        check(".type ||| 1", [CLOSE], "filter")
    assert "does not compile" in str(caught.value)
    assert position(caught.value) == (1, 8)


def test_check_names_the_sample_a_program_fails_on() -> None:
    with pytest.raises(ExpressionError, match="on the LivechatSession sample"):
        check("{body: (.messages[0].msg + 1)}", [CLOSE], "template")


def test_an_endpoint_with_a_program_that_does_not_compile_is_refused() -> None:
    with pytest.raises(EndpointError, match="filter does not compile"):
        validate(endpoint(filter=".a |||"))
    with pytest.raises(EndpointError, match="template does not compile"):
        validate(endpoint(template="{body:"))
    with pytest.raises(EndpointError, match="header"):
        validate(endpoint(headers={"X-Key": "a\r\nInjected: 1"}))
    with pytest.raises(EndpointError, match="user:password"):
        validate(endpoint(basic_auth="nopassword"))


def test_a_filter_that_fails_on_a_body_is_no_match_and_is_counted() -> None:
    failing = endpoint(filter=".tags + 1")
    before = FILTER_ERRORS["default/crm"]
    assert EndpointDirectory.passes(failing, CLOSE, "delivery-1") is False
    assert FILTER_ERRORS["default/crm"] == before + 1
    assert EndpointDirectory.passes(endpoint(), CLOSE, "delivery-2") is True  # no filter
