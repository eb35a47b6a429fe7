"""The retry decision, as a function of data: a job, what its last POST got, the policy.

Rocket.Chat's documented rule (the seed, profile rocketchat-2023): any answer but 200 is
retried ten times, ten seconds apart. Current servers (profile rocketchat-7,
`lib/webhooks.ts`) retry only 5xx, 429 and network errors, 5 POSTs in all, `4 x timeout`
apart, and drop any other answer (omnihooks dead-letters it instead: nothing is dropped).
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import Enum

from msgspec.structs import replace

from streams.core.clock import iso, parse_iso
from topics.records import Attempt, DeadLetter, WebhookJob

# Errors no retry can fix: the URL itself is refused (OMNIHOOKS_BLOCK_PRIVATE_URLS) or broken.
NEVER_RETRIED = ("blocked:", "invalid URL")


class Verdict(Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"


@dataclass(frozen=True)
class RetryPolicy:
    retries: int  # attempts after the first; 10 by default, so 11 POSTs at most
    delay_s: float
    rule: str = "documented"
    accept_any_2xx: bool = False
    jitter: float = 0.0  # each delay moves by up to this share either way (0.2: ±20 %)
    retry_after_max_s: float = 300.0  # the longest a receiver's Retry-After may push a retry

    def delay_after(self, retry_after_s: float | None, draw: float) -> float:
        """The wait before the next attempt: the schedule's delay moved by `draw` (-1 to 1)
        times the jitter, and lengthened by a 429's or 503's Retry-After up to the cap.
        A Retry-After never shortens the schedule (Svix and Rocket.Chat alike keep their own
        delay as the minimum)."""
        delay = self.delay_s * (1 + self.jitter * max(-1.0, min(1.0, draw)))
        if retry_after_s is not None and retry_after_s > delay:
            delay = max(delay, min(retry_after_s, self.retry_after_max_s))
        return delay

    def is_success(self, status: int | None) -> bool:
        if status is None:
            return False
        return 200 <= status < 300 if self.accept_any_2xx else status == 200

    def is_retriable(self, status: int | None, error: str | None = None) -> bool:
        """Timeouts and connection errors always are, a refused URL never; answers depend on
        the rule."""
        if error is not None and error.startswith(NEVER_RETRIED):
            return False
        if status is None or self.rule == "documented":
            return True
        return status >= 500 or status == 429


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    job: WebhookJob  # with the attempt appended (and due_at set when it must wait)
    reason: str = ""

    def dead_letter(self, now: float) -> DeadLetter:
        return DeadLetter(
            job=self.job,
            attempts=self.job.attempts,
            dead_lettered_at=iso(now),
            reason=self.reason,
        )


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """A Retry-After header's wait in seconds: delta-seconds or an HTTP date (RFC 9110
    10.2.3); None when absent or unreadable (then the schedule alone decides)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None  # an HTTP date is always GMT; a zoneless one is not one
    return max(0.0, when.timestamp() - now)


def next_attempt(
    job: WebhookJob,
    attempt: Attempt,
    policy: RetryPolicy,
    now: float,
    probe: bool = False,
    retry_after_s: float | None = None,
    draw: float = 0.0,
) -> Decision:
    """What happens to `job` after `attempt`: delivered, wait for another try, or dead.

    A probe of an open endpoint (streams/core/breaker.py) is not the job's own failure but the
    endpoint's: it is kept on the record marked as a probe and never counts against the
    job's retries, now or later, so holding a job never dead-letters it.
    """
    if probe:
        attempt = replace(attempt, probe=True)
    if policy.is_success(attempt.status):
        return Decision(Verdict.DELIVERED, job.with_attempt(attempt, due_at=None))
    made = sum(1 for earlier in job.attempts if not earlier.probe) + 1
    outcome = f"HTTP {attempt.status}" if attempt.status is not None else attempt.error
    if not policy.is_retriable(attempt.status, attempt.error):
        reason = f"{outcome} is not retried" + (
            f" under the {policy.rule} rule" if attempt.status is not None else ""
        )
        return Decision(Verdict.DEAD, job.with_attempt(attempt, due_at=None), reason)
    if made > policy.retries and not probe:
        reason = f"{made} attempts failed; the last: {outcome}"
        return Decision(Verdict.DEAD, job.with_attempt(attempt, due_at=None), reason)
    honoured = retry_after_s if attempt.status in (429, 503) else None
    due = iso(now + policy.delay_after(honoured, draw))
    return Decision(Verdict.RETRY, job.with_attempt(attempt, due_at=due), f"retry at {due}")


def held_too_long(job: WebhookJob, now: float, max_hold_s: float) -> bool:
    """Held since longer than `max_hold_s` by an endpoint that was down or paused: the job
    spends its attempts again, and a dead endpoint's jobs end as dead letters (kept and
    replayable) rather than wait on. By the job's age, not a breaker's, which a restart
    would reset."""
    return job.held_since is not None and now - parse_iso(job.held_since) > max_hold_s
