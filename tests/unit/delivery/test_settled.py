"""A job read twice is attempted once: the settled-jobs rules over a plain dict table."""

from __future__ import annotations

from msgspec.structs import replace

from streams.delivery.settled import Outcome, SettledJobs, settled_key
from topics.records import Attempt, WebhookJob


def job(delivery_id: str = "d-1", attempts: int = 0, replay_id: str | None = None) -> WebhookJob:
    made = tuple(
        Attempt(at="2024-01-01T00:00:00.000Z", status=500, error=None, duration_ms=1.0)
        for _ in range(attempts)
    )
    return WebhookJob(delivery_id, "Message", "room-1", "http://crm/", {}, "2024-01-01T00:00:00.000Z",
                      attempts=made, replay_id=replay_id)  # fmt: skip


def test_a_delivered_job_read_again_is_not_attempted() -> None:
    settled = SettledJobs({})
    assert settled.begin(job())
    settled.settle(job(), attempts=1, final=True, now=100.0)
    assert not settled.begin(job())
    assert not settled.begin(job(attempts=3))  # a stale retry record of it too


def test_the_same_job_in_flight_twice_is_attempted_once() -> None:
    settled = SettledJobs({})
    assert settled.begin(job())
    assert not settled.begin(job())
    settled.end(job())  # the attempt stopped without an outcome: it may be tried again
    assert settled.begin(job())


def test_a_retry_goes_on_but_the_fresh_copy_and_older_retries_do_not() -> None:
    settled = SettledJobs({})
    assert settled.begin(job())
    settled.settle(job(), attempts=1, final=False, now=100.0)  # scheduled for retry
    assert not settled.begin(job())  # the session pipeline's repeat of the fresh job
    assert settled.begin(job(attempts=1))  # the retry itself
    settled.settle(job(attempts=1), attempts=2, final=False, now=110.0)
    assert not settled.begin(job(attempts=1))  # that retry read again after a crash
    assert settled.begin(job(attempts=2))


def test_an_operators_replay_is_a_new_job() -> None:
    settled = SettledJobs({})
    settled.begin(job())
    settled.settle(job(), attempts=11, final=True, now=100.0)  # dead-lettered
    assert settled_key(job(replay_id="r-1")) != settled_key(job())
    assert settled.begin(job(replay_id="r-1"))


def test_outcomes_expire_after_the_retention_including_those_recovered() -> None:
    table: dict[bytes, bytes] = {b"old-recovered": Outcome(10.0, 1, True).to_json()}
    settled = SettledJobs(table)
    settled.begin(job("a"))
    settled.settle(job("a"), attempts=1, final=False, now=50.0)
    settled.begin(job("b"))
    settled.settle(job("b"), attempts=1, final=True, now=90.0)
    settled.begin(job("a", attempts=1))
    settled.settle(job("a", attempts=1), attempts=2, final=True, now=95.0)  # settled again
    assert settled.expired(now=100.0, retention_s=60.0) == [b"old-recovered"]
    assert settled.expired(now=151.0, retention_s=60.0) == [b"b"]
    assert settled.expired(now=156.0, retention_s=60.0) == [b"a"]


def test_outcomes_recovered_after_a_rebalance_expire_once_reread() -> None:
    table: dict[bytes, bytes] = {}
    settled = SettledJobs(table)
    assert settled.expired(now=100.0, retention_s=60.0) == []
    table[b"moved-here"] = Outcome(10.0, 1, True).to_json()  # a new partition's changelog
    assert settled.expired(now=100.0, retention_s=60.0) == []
    settled.reread()
    assert settled.expired(now=100.0, retention_s=60.0) == [b"moved-here"]


def test_an_outcome_reads_back_as_written() -> None:
    outcome = Outcome(12.5, 3, False)
    assert Outcome.from_json(outcome.to_json()) == outcome
    assert replace(outcome, final=True).final
