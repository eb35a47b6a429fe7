"""The circuit breaker per endpoint (pure core) and its waiting gates."""

from __future__ import annotations

import asyncio

from msgspec.structs import replace

from streams.core.breaker import Breaker, BreakerPolicy, Pass, State
from streams.core.clock import iso
from streams.core.endpoints import endpoint_label
from streams.core.retry import RetryPolicy, Verdict, held_too_long, next_attempt
from streams.delivery.endpoint_gates import EndpointGates
from topics.records import Attempt, WebhookJob

POLICY = BreakerPolicy(
    failure_ratio=0.5, min_jobs=4, window_s=60, cooldown_s=30, max_cooldown_s=100
)


def fail_jobs(breaker: Breaker, n: int, now: float, prefix: str = "j") -> None:
    for i in range(n):
        leave = breaker.claim(now)
        assert leave is not None
        breaker.record(leave, f"{prefix}{i}", failed=True, now=now)


def test_opens_when_enough_distinct_jobs_fail() -> None:
    breaker = Breaker(POLICY)
    fail_jobs(breaker, 3, now=0)
    assert breaker.state is State.CLOSED
    fail_jobs(breaker, 1, now=1, prefix="k")
    assert breaker.state is State.OPEN
    assert breaker.claim(2) is None
    assert breaker.wait_s(2) == 29


def test_one_job_failing_its_retries_alone_never_opens_it() -> None:
    """Rocket.Chat's rule holds for a lone failing job: ten retries, then the dead letter."""
    breaker = Breaker(POLICY)
    for attempt in range(11):
        leave = breaker.claim(attempt * 10)
        assert leave == Pass(probe=False)
        breaker.record(leave, "same-job", failed=True, now=attempt * 10)
    assert breaker.state is State.CLOSED


def test_successes_keep_it_closed_below_the_ratio() -> None:
    breaker = Breaker(POLICY)
    for i in range(20):
        leave = breaker.claim(i)
        assert leave is not None
        breaker.record(leave, f"j{i}", failed=i % 4 == 3, now=i)
    assert breaker.state is State.CLOSED


def test_old_outcomes_leave_the_window() -> None:
    breaker = Breaker(POLICY)
    fail_jobs(breaker, 3, now=0)
    fail_jobs(breaker, 1, now=61, prefix="late")
    assert breaker.state is State.CLOSED


def test_one_probe_after_the_cooldown_then_closed_or_longer_open() -> None:
    breaker = Breaker(POLICY)
    fail_jobs(breaker, 4, now=0)
    probe = breaker.claim(30)
    assert probe == Pass(probe=True)
    assert breaker.state is State.PROBING
    assert breaker.claim(30) is None  # one probe at a time
    assert breaker.wait_s(30) is None
    breaker.record(probe, "p", failed=True, now=31)
    assert breaker.state is State.OPEN
    assert breaker.wait_s(31) == 60  # twice the cool-down
    probe = breaker.claim(91)
    assert probe is not None and probe.probe
    breaker.record(probe, "p", failed=True, now=91)
    assert breaker.wait_s(91) == 100  # capped
    probe = breaker.claim(191)
    assert probe is not None
    breaker.record(probe, "p", failed=False, now=191)
    assert breaker.state is State.CLOSED
    assert breaker.claim(191) == Pass(probe=False)
    fail_jobs(breaker, 4, now=200)
    assert breaker.wait_s(200) == 30  # the cool-down starts over


def test_a_probe_never_made_lets_the_next_one_go() -> None:
    breaker = Breaker(POLICY)
    fail_jobs(breaker, 4, now=0)
    probe = breaker.claim(30)
    assert probe is not None
    breaker.release(probe, 31)
    assert breaker.claim(31) == Pass(probe=True)


def test_attempts_let_through_before_opening_do_not_decide() -> None:
    breaker = Breaker(POLICY)
    early = breaker.claim(0)
    assert early is not None
    fail_jobs(breaker, 4, now=0)
    breaker.record(early, "early", failed=False, now=1)
    assert breaker.state is State.OPEN


def test_a_failed_probe_never_exhausts_the_jobs_attempts() -> None:
    job = WebhookJob("d", "Message", "room", "http://crm/hook", {}, "x")
    for n in range(3):
        job = job.with_attempt(Attempt(f"t{n}", 500, None, 1.0), due_at=None)
    policy = RetryPolicy(retries=3, delay_s=10)
    failed = Attempt("t", 503, None, 1.0)
    assert next_attempt(job, failed, policy, 0.0).verdict is Verdict.DEAD
    assert next_attempt(job, failed, policy, 0.0, probe=True).verdict is Verdict.RETRY
    refused = Attempt("t", None, "blocked: private", 0.0)
    assert next_attempt(job, refused, policy, 0.0, probe=True).verdict is Verdict.DEAD


def test_metrics_label_drops_credentials() -> None:
    label = endpoint_label("https://user:pw@crm.example:8443/hook?token=s3cret#x")
    assert label == "https://crm.example:8443/hook"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_gates_hold_waiters_until_a_probe_closes_the_endpoint_in_order() -> None:
    async def scenario() -> list[str]:
        clock = Clock()
        gates = EndpointGates(BreakerPolicy(min_jobs=2, cooldown_s=0.05), clock)
        url = "http://crm/hook"
        for name in ("a", "b"):
            leave = gates.try_pass(url)
            assert leave is not None
            gates.record(url, leave, name, failed=True)
        assert gates.try_pass(url) is None
        assert gates.try_pass("http://other/hook") is not None  # other endpoints flow
        order: list[str] = []

        async def waiter(name: str) -> None:
            leave = await gates.wait_pass(url)
            if leave.probe:
                order.append(f"probe:{name}")
                await asyncio.sleep(0.01)
                gates.record(url, leave, name, failed=False)
            else:
                order.append(name)

        tasks = [asyncio.create_task(waiter(n)) for n in "wxyz"]
        await asyncio.sleep(0.01)
        assert [s.waiting for s in gates.statuses() if s.endpoint == url] == [4]
        clock.now = 1.0  # past the cool-down
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        assert gates.statuses()[0].state == "closed"
        return order

    assert asyncio.run(scenario()) == ["probe:w", "x", "y", "z"]


def test_no_breaker_lets_everything_through() -> None:
    gates = EndpointGates(None)
    for i in range(50):
        leave = gates.try_pass("http://crm/hook")
        assert leave is not None
        gates.record("http://crm/hook", leave, str(i), failed=True)
    assert gates.try_pass("http://crm/hook") == Pass(probe=False)


def test_held_jobs_stay_in_line_through_a_failed_probe_and_drain_in_order() -> None:
    async def scenario() -> list[str]:
        policy = BreakerPolicy(min_jobs=1, cooldown_s=0.5, max_cooldown_s=0.5)
        gates = EndpointGates(policy)
        url = "http://crm/hook"
        leave = gates.try_pass(url)
        assert leave is not None
        gates.record(url, leave, "opener", failed=True)
        order: list[str] = []
        outcomes = iter([True, False])  # the first probe fails, the second succeeds

        async def waiter(name: str) -> None:
            leave = await gates.wait_pass(url)
            order.append(("probe:" if leave.probe else "") + name)
            if leave.probe:
                gates.record(url, leave, name, failed=next(outcomes))

        tasks = [asyncio.create_task(waiter(f"w{n}")) for n in range(200)]
        await asyncio.sleep(0)
        assert order == [] and gates.statuses()[0].waiting == 200
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        return order

    order = asyncio.run(scenario())
    assert order == ["probe:w0", "probe:w1"] + [f"w{n}" for n in range(2, 200)]


def test_the_kept_counts_match_a_recount() -> None:
    """Successes are counted per second and failures kept by id (a window of every job id
    would hold 300k ids at 5k jobs/s); tried and failing must equal a plain recount of each
    job's last outcome in the window, through repeated outcomes and expiry."""
    import random

    rng = random.Random(7)
    breaker = Breaker(BreakerPolicy(failure_ratio=1.0, min_jobs=10**9, window_s=5))
    last: dict[str, tuple[float, bool]] = {}
    delivered: set[str] = set()
    now = 0.0
    for _ in range(5000):
        now += rng.random() * 0.05
        job = f"j{rng.randrange(3000)}"
        if job in delivered:
            continue  # a delivered job never comes back
        failed = rng.random() < 0.4
        leave = breaker.claim(now)
        assert leave is not None
        breaker.record(leave, job, failed, now)
        last[job] = (now, failed)
        if not failed:
            delivered.add(job)
        cutoff = now - 5
        failing = sum(1 for t, bad in last.values() if bad and t >= cutoff)
        assert len(breaker._failed) == failing
        succeeded = sum(1 for t, bad in last.values() if not bad and int(t) >= cutoff)
        assert breaker._succeeded == succeeded


def test_probes_on_the_record_never_count_against_the_jobs_retries() -> None:
    """A job held through a long outage may be probed many times: when the endpoint is back
    and answers 503 once, the job still has its own retries."""
    job = WebhookJob("d", "Message", "room", "http://crm/hook", {}, "x")
    policy = RetryPolicy(retries=3, delay_s=10)
    for n in range(6):
        decision = next_attempt(job, Attempt(f"p{n}", 503, None, 1.0), policy, 0.0, probe=True)
        assert decision.verdict is Verdict.RETRY
        job = decision.job
    assert [a.probe for a in job.attempts] == [True] * 6
    for n in range(3):
        decision = next_attempt(job, Attempt(f"a{n}", 503, None, 1.0), policy, 0.0)
        assert decision.verdict is Verdict.RETRY, n
        job = decision.job
    last = next_attempt(job, Attempt("a3", 503, None, 1.0), policy, 0.0)
    assert last.verdict is Verdict.DEAD and "4 attempts failed" in last.reason
    assert WebhookJob.from_json(job.to_json()).attempts[0].probe


def test_a_held_job_gives_up_by_its_age_not_a_breakers() -> None:
    job = WebhookJob("d", "Message", "room", "http://crm/hook", {}, "x")
    assert not held_too_long(job, 10**10, 60)
    held = replace(job, held_since=iso(1000.0))
    assert not held_too_long(held, 1060.0, 60)
    assert held_too_long(held, 1061.0, 60)
    attempted = held.with_attempt(Attempt("t", 503, None, 1.0), due_at=None)
    assert attempted.held_since is None  # an attempt ends the hold
    assert WebhookJob.from_json(held.to_json()).held_since == held.held_since


def test_a_waiter_leaves_the_line_when_its_lease_ends() -> None:
    async def scenario() -> None:
        gates = EndpointGates(BreakerPolicy(min_jobs=1, cooldown_s=60))
        url = "http://crm/hook"
        leave = gates.try_pass(url)
        assert leave is not None
        gates.record(url, leave, "opener", failed=True)
        first = asyncio.create_task(gates.wait_pass(url, lease_s=0.1))
        second = asyncio.create_task(gates.wait_pass(url, lease_s=0.2))
        assert await asyncio.wait_for(first, 2) is None
        assert await asyncio.wait_for(second, 2) is None
        assert gates.statuses()[0].waiting == 0

    asyncio.run(scenario())


def test_an_invalid_url_gets_a_label_not_an_exception() -> None:
    for url in ("http://crm:abc/hook", "http://crm:99999/h", "http://[::1/h"):
        assert endpoint_label(url) == "(invalid URL)"
    gates = EndpointGates(BreakerPolicy())
    assert gates.try_pass("http://crm:abc/hook") is not None
    assert gates.statuses()[0].endpoint == "(invalid URL)"
