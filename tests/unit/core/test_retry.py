"""next_attempt: delivered, retried after the delay, or dead with every attempt kept."""

import pytest

from streams.core.clock import parse_iso
from streams.core.retry import RetryPolicy, Verdict, next_attempt, retry_after_seconds
from topics.records import Attempt, WebhookJob

NOW = 1_700_000_000.0


def job() -> WebhookJob:
    return WebhookJob(
        "d-1", "Message", "room-1", "http://crm/hook", {"a": 1}, "2023-02-02T10:00:00.000Z"
    )


def attempt(status: int | None, error: str | None = None) -> Attempt:
    return Attempt("2023-02-02T10:00:00.000Z", status, error, 12.5)


def test_200_is_delivered() -> None:
    decision = next_attempt(job(), attempt(200), RetryPolicy(10, 10), NOW)
    assert decision.verdict is Verdict.DELIVERED
    assert len(decision.job.attempts) == 1


def test_201_is_a_failure_unless_any_2xx_is_accepted() -> None:
    assert next_attempt(job(), attempt(201), RetryPolicy(10, 10), NOW).verdict is Verdict.RETRY
    lenient = RetryPolicy(10, 10, accept_any_2xx=True)
    assert next_attempt(job(), attempt(204), lenient, NOW).verdict is Verdict.DELIVERED


def test_failure_waits_the_delay() -> None:
    decision = next_attempt(job(), attempt(None, "timeout"), RetryPolicy(10, 10), NOW)
    assert decision.verdict is Verdict.RETRY
    assert decision.job.due_at is not None
    assert parse_iso(decision.job.due_at) == pytest.approx(NOW + 10, abs=0.001)


def test_ten_retries_means_eleven_attempts_then_dead() -> None:
    policy = RetryPolicy(10, 10)
    current = job()
    for n in range(1, 12):
        decision = next_attempt(current, attempt(500), policy, NOW)
        current = decision.job
        expected = Verdict.DEAD if n == 11 else Verdict.RETRY
        assert decision.verdict is expected, n
    assert len(current.attempts) == 11
    letter = decision.dead_letter(NOW)
    assert len(letter.attempts) == 11 and "11 attempts failed" in letter.reason


@pytest.mark.parametrize(("status", "verdict"), [(404, Verdict.DEAD), (400, Verdict.DEAD),
                                                 (429, Verdict.RETRY), (503, Verdict.RETRY)])  # fmt: skip
def test_rocketchat_2025_rule_drops_4xx_but_429(status: int, verdict: Verdict) -> None:
    policy = RetryPolicy(5, 20, rule="rocketchat-2025")
    assert next_attempt(job(), attempt(status), policy, NOW).verdict is verdict
    documented = RetryPolicy(10, 10)
    assert next_attempt(job(), attempt(status), documented, NOW).verdict is Verdict.RETRY


def test_zero_retries_dead_letters_the_first_failure() -> None:
    assert next_attempt(job(), attempt(500), RetryPolicy(0, 10), NOW).verdict is Verdict.DEAD


def test_a_blocked_url_is_dead_at_once() -> None:
    blocked = Attempt("2023-02-02T10:00:00.000Z", None, "blocked: crm resolves to 10.0.0.1", 0.0)
    decision = next_attempt(job(), blocked, RetryPolicy(10, 10), NOW)
    assert decision.verdict is Verdict.DEAD
    assert "not retried" in decision.reason


def test_retry_after_lengthens_the_delay_up_to_the_cap_never_shortens_it() -> None:
    job = WebhookJob("d", "Message", "room", "http://crm/hook", {}, "x")
    policy = RetryPolicy(retries=10, delay_s=10, retry_after_max_s=120)
    busy = Attempt("t", 429, None, 1.0)

    def due_in(attempt: Attempt, retry_after: float | None) -> float:
        decision = next_attempt(job, attempt, policy, 1000.0, retry_after_s=retry_after)
        assert decision.verdict is Verdict.RETRY
        assert decision.job.due_at is not None
        return parse_iso(decision.job.due_at) - 1000.0

    assert due_in(busy, 30) == pytest.approx(30)
    assert due_in(busy, 3) == pytest.approx(10)  # never sooner than the schedule
    assert due_in(busy, 3600) == pytest.approx(120)  # capped
    assert due_in(Attempt("t", 503, None, 1.0), 45) == pytest.approx(45)
    assert due_in(Attempt("t", 500, None, 1.0), 45) == pytest.approx(10)  # only 429 and 503
    assert retry_after_seconds("120", 0) == 120
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 1445412450) == 30
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 1445412510) == 0
    assert retry_after_seconds("soon", 0) is None
    assert retry_after_seconds(None, 0) is None
    assert retry_after_seconds("-5", 0) is None


def test_jitter_moves_the_delay_within_its_share() -> None:
    policy = RetryPolicy(retries=10, delay_s=10, jitter=0.2)
    assert policy.delay_after(None, -1.0) == pytest.approx(8)
    assert policy.delay_after(None, 1.0) == pytest.approx(12)
    assert policy.delay_after(None, 0.0) == pytest.approx(10)
    assert RetryPolicy(retries=10, delay_s=10).delay_after(None, 1.0) == 10  # off by default
