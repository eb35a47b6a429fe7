"""The console's pure parts: the metrics window, tokens and sessions, and what pages show."""

from __future__ import annotations

from typing import Any

import pytest

from streams.ops.console import pages
from streams.ops.console.access import Access, TokenError, parse_tokens
from streams.ops.console.pages import Viewer
from streams.ops.console.samples import History, parse_metrics, quantile
from streams.ops.dead_letters import Entry
from topics.records import Attempt, DeadLetter, WebhookJob

CRM = "http://crm.example/hook"


def exposition(delivered: float, retried: float, buckets: dict[str, float]) -> str:
    """A worker's /metrics text as prometheus_client writes it, with these values."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    registry = CollectorRegistry()
    outcomes = Counter("omnihooks_endpoint_outcomes", "-", ["endpoint", "outcome"],
                       registry=registry)  # fmt: skip
    outcomes.labels(CRM, "delivered").inc(delivered)
    outcomes.labels(CRM, "retry").inc(retried)
    bounds = [float(le) for le in buckets if le != "+Inf"]
    post = Histogram("omnihooks_endpoint_post_seconds", "-", ["endpoint"], buckets=bounds,
                     registry=registry).labels(CRM)  # fmt: skip
    below = 0.0
    for le, cumulative in buckets.items():  # one observation at each bucket's bound
        for _ in range(int(cumulative - below)):
            post.observe(float(le) if le != "+Inf" else 1e9)
        below = cumulative
    return generate_latest(registry).decode()


def test_counts_are_increases_within_the_window_and_a_restart_counts_from_zero() -> None:
    history = History(keep_s=1000)
    zero = {"0.01": 0, "0.1": 0, "+Inf": 0}
    history.add("w1", parse_metrics(exposition(100, 5, zero), at=1000))  # before the window
    history.add("w1", parse_metrics(exposition(110, 5, zero), at=1500))
    history.add("w1", parse_metrics(exposition(130, 7, zero), at=1900))
    history.add("w1", parse_metrics(exposition(4, 1, zero), at=1950))  # restarted: 4 new
    history.add("w2", parse_metrics(exposition(0, 0, zero), at=1900))
    history.add("w2", parse_metrics(exposition(3, 0, zero), at=1990))
    seen = history.window(now=2000, window_s=600)[CRM]
    assert seen.delivered == 10 * 0.2 + 20 + 4 + 3  # a fifth of 1000->1500 is in the window
    assert seen.retried == 0 + 2 + 1 and seen.failed == 3
    assert sum(seen.delivered_bins) == seen.delivered and sum(seen.failed_bins) == seen.failed
    assert seen.delivered_bins[27] == 4 and seen.delivered_bins[-1] == 3  # 20 s intervals


def test_percentiles_interpolate_within_a_bucket_like_histogram_quantile() -> None:
    assert quantile(0.5, {"0.01": 50, "0.1": 100, "+Inf": 100}) == pytest.approx(0.01)
    assert quantile(0.75, {"0.01": 50, "0.1": 100, "+Inf": 100}) == pytest.approx(0.055)
    assert quantile(0.99, {"0.01": 0, "0.1": 0, "+Inf": 10}) == 0.1  # beyond the last bound
    assert quantile(0.5, {"0.01": 0, "+Inf": 0}) is None
    history = History()
    history.add("w", parse_metrics(exposition(0, 0, {"0.01": 0, "0.1": 0, "+Inf": 0}), 1))
    history.add("w", parse_metrics(exposition(9, 1, {"0.01": 9, "0.1": 10, "+Inf": 10}), 2))
    seen = history.window(now=3, window_s=60)[CRM]
    assert seen.p50_s == pytest.approx(0.01 * 5 / 9) and seen.p99_s == pytest.approx(0.091)


def test_tokens_are_named_and_short_or_twice_named_ones_refused() -> None:
    assert parse_tokens("") == {}
    assert parse_tokens("x" * 16) == {"console": "x" * 16}
    assert parse_tokens(f"ops:{'a' * 16}, ci:{'b' * 20}") == {"ops": "a" * 16, "ci": "b" * 20}
    with pytest.raises(TokenError, match="shorter than 16"):
        parse_tokens("ops:short")
    with pytest.raises(TokenError, match="named twice"):
        parse_tokens(f"ops:{'a' * 16},ops:{'b' * 16}")


def test_a_session_changes_nothing_without_its_own_csrf_token() -> None:
    access = Access({"ops": "a" * 16})
    assert access.sign_in("b" * 16) is None
    signed = access.sign_in("a" * 16, now=0)
    assert signed is not None
    session_id, session = signed
    assert access.session(session_id, now=10) == session
    assert access.form_signer(session, session.csrf) == "ops"
    assert access.form_signer(session, "forged") is None and access.form_signer(session, "") is None
    assert access.session(session_id, now=13 * 3600) is None  # expired
    assert access.bearer(f"Bearer {'a' * 16}") == "ops" and access.bearer("Bearer nope") is None
    assert access.bearer(None) is None and not Access({}).enabled


def dead_letter(room: str, url: str, body: dict[str, object]) -> Entry:
    job = WebhookJob("d-1", "Message", room, url, body, "2023-02-02T10:00:00.000Z")
    attempt = Attempt("2023-02-02T10:00:01.000Z", 500, None, 3.0, "<b>oops</b>")
    return Entry(0, 7, DeadLetter(job, (attempt,), "2023-02-02T10:00:02.000Z", "1 attempt"))


def test_pages_escape_what_they_show_and_hide_tokens_and_url_credentials() -> None:
    evil = '<img src=x onerror="alert(1)">'
    entry = dead_letter(
        evil, "https://user:pw@crm.example/hook?apikey=k3y",
        {"visitor": {"token": "visitor-secret", "name": evil}, "crmToken": "c", "msg": "hi"},
    )  # fmt: skip
    viewer = Viewer("ops", 'csrf"><script>', True)
    html = pages.dead_letters_page([entry], {"room": evil}, False, None, viewer)
    assert "<img" not in html and "<script>" not in html and "&lt;img" in html
    assert "&lt;b&gt;oops&lt;/b&gt;" in html  # the CRM's answer, as text
    for secret in ("visitor-secret", "pw@", "k3y", '"crmToken": "c"'):
        assert secret not in html
    assert "https://crm.example/hook?…" in html and "•••• (hidden)" in html
    confirm = pages.confirm_page("replay", [entry], "https://crm.example/new?token=t0k", 0,
                                 "pending-1", viewer)  # fmt: skip
    assert "Replay 1 dead letters to https://crm.example/new?…?" in confirm
    assert "t0k" not in confirm and 'name=pending value="pending-1"' in confirm
    answer = entry.letter.attempts[0]
    assert pages.redact_text("401: Authorization: Bearer abc123") == (
        "401: Authorization: Bearer •••• (hidden)"
    )
    assert pages.redact_text('{"error": "bad", "api_key": "k"}') == (
        '{"error": "bad", "api_key": "•••• (hidden)"}'
    )
    assert answer.response_excerpt == "<b>oops</b>"


def test_after_sign_in_only_a_path_on_the_console_is_followed() -> None:
    from streams.ops.console.server import safe_next

    assert safe_next("/dead-letters?status=5xx") == "/dead-letters?status=5xx"
    for elsewhere in ("//evil.example", "/\\evil.example", "https://evil.example/",
                      "evil.example", "/\tx", "/a\nLocation: x"):  # fmt: skip
        assert safe_next(elsewhere) == "/", elsewhere


def test_the_worst_worker_state_is_the_endpoints_and_failing_rows_say_so() -> None:
    assert pages.merge_state(["closed", "open", "probing"]) == "open"
    assert pages.merge_state(["closed", "paused"]) == "paused"
    assert pages.merge_state([]) == "-"
    row = pages.EndpointRow(CRM, delivered=2, failed=5)
    html = pages.overview_page([row], [], 300, False, Viewer(None, "", False))
    assert 'class="state-- failing"' in html and "read-only" in html
    assert '<meta http-equiv="refresh" content="15">' in html  # a dashboard stays current


async def test_a_dns_worker_address_stands_for_every_address_its_name_has_now() -> None:
    from streams.ops.console.workers import WorkerPages

    pages_ = WorkerPages(["dns+http://localhost:6066", "http://10.0.0.7:6066"], History())
    assert "http://127.0.0.1:6066" in await pages_._expand("dns+http://localhost:6066")
    assert await pages_._expand("http://10.0.0.7:6066") == ["http://10.0.0.7:6066"]
    assert await pages_._expand("dns+http://no-such-name.invalid:6066") == []
    view = pages_.views["dns+http://no-such-name.invalid:6066"]
    assert not view.reachable and "no address" in view.detail


class Unreadable:
    """Kafka's side of the console when the topics cannot be read."""

    def dead_letter_topic(self) -> Any:
        raise RuntimeError("topic t.webhook-dead-letters does not exist")

    def dead_letters(self) -> Any:
        raise RuntimeError("topic t.webhook-dead-letters does not exist")


async def test_a_kafka_read_that_fails_is_a_page_saying_why_not_a_crash() -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from streams.ops.console.server import Console, build_app

    console = Console(Unreadable(), Access({}), [], scrape_s=3600)  # type: ignore[arg-type]
    async with TestClient(TestServer(build_app(console), host="127.0.0.1")) as client:
        answer = await client.get("/dead-letters")
        assert answer.status == 503
        page = await answer.text()
        assert "Cannot read" in page and "t.webhook-dead-letters does not exist" in page
        assert answer.headers["X-Frame-Options"] == "DENY"
        refused = await client.get("/dead-letters", headers={"Host": "rebound.example"})
        assert refused.status == 421
