"""A circuit breaker per endpoint, as a function of outcomes and time: no I/O, no clock.

Closed, an endpoint takes every attempt. When at least `min_jobs` distinct jobs were tried in
the last `window_s` and `failure_ratio` of them failed, it opens: no attempt goes to it and
its jobs wait (the delivery edge holds them in Kafka without spending attempts). After a
cool-down one attempt goes as a probe: its success closes the endpoint, its failure opens it
again for twice the cool-down (up to `max_cooldown_s`).

Jobs, not attempts, are counted so that one job failing its ten retries alone never opens
the endpoint: a lone failing job is dead-lettered as Rocket.Chat's rule says, and only an
endpoint that fails many jobs is held. How long a job may be held is the delivery edge's
rule (its age, `OMNIHOOKS_BREAKER_MAX_HOLD_S`), not the breaker's: a breaker lives and dies
with its worker, a job's age does not.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from enum import Enum


class State(Enum):
    CLOSED = "closed"
    OPEN = "open"
    PROBING = "probing"  # open, one probe attempt in flight


STATE_NUMBER = {State.CLOSED: 0, State.OPEN: 1, State.PROBING: 2}


@dataclass(frozen=True)
class BreakerPolicy:
    failure_ratio: float = 0.5
    min_jobs: int = 10
    window_s: float = 60.0
    cooldown_s: float = 30.0
    max_cooldown_s: float = 300.0


@dataclass(frozen=True)
class Pass:
    """Leave for one attempt; a probe's outcome decides the endpoint's state."""

    probe: bool


class Breaker:
    def __init__(self, policy: BreakerPolicy) -> None:
        self.policy = policy
        self.state = State.CLOSED
        self.reopen_at = 0.0
        self.cooldown_s = policy.cooldown_s
        self.failures = 0  # failed attempts recorded, all time (for /metrics)
        # A delivered job never comes back, so successes are counted per second, without
        # ids (a busy endpoint's window would otherwise hold every job id of a minute); a
        # failed job may come back, so failures are kept by id, last outcome last.
        self._successes: deque[list[float]] = deque()  # [second, count], oldest first
        self._succeeded = 0
        self._failed: OrderedDict[str, float] = OrderedDict()  # delivery id -> when

    def claim(self, now: float) -> Pass | None:
        """Leave to attempt now, or None while the endpoint is open (the job waits)."""
        if self.state is State.CLOSED:
            return Pass(probe=False)
        if self.state is State.OPEN and now >= self.reopen_at:
            self.state = State.PROBING
            return Pass(probe=True)
        return None

    def wait_s(self, now: float) -> float | None:
        """How long until `claim` may say yes; None while a probe is out (its end decides)."""
        if self.state is State.PROBING:
            return None
        if self.state is State.OPEN:
            return max(0.0, self.reopen_at - now)
        return 0.0

    def record(self, leave: Pass, delivery_id: str, failed: bool, now: float) -> None:
        """The outcome of an attempt made with `leave`."""
        if failed:
            self.failures += 1
        if leave.probe:
            if failed:
                self.cooldown_s = min(self.cooldown_s * 2, self.policy.max_cooldown_s)
                self._open(now)
            else:
                self._close()
            return
        if self.state is not State.CLOSED:
            return  # an attempt let through before the endpoint opened: the probe decides
        self._failed.pop(delivery_id, None)  # its earlier failure, if any, is superseded
        if failed:
            self._failed[delivery_id] = now
        else:
            second = float(int(now))
            if self._successes and self._successes[-1][0] == second:
                self._successes[-1][1] += 1
            else:
                self._successes.append([second, 1.0])
            self._succeeded += 1
        self._forget_before(now - self.policy.window_s)
        tried = self._succeeded + len(self._failed)
        if tried >= self.policy.min_jobs and len(self._failed) >= self.policy.failure_ratio * tried:
            self._open(now)

    def release(self, leave: Pass, now: float) -> None:
        """An attempt allowed but never made (the job was settled already, or shutdown): a
        probe that never went leaves the endpoint open, ready for the next one."""
        if leave.probe and self.state is State.PROBING:
            self.state = State.OPEN
            self.reopen_at = now

    def _open(self, now: float) -> None:
        self.state = State.OPEN
        self.reopen_at = now + self.cooldown_s
        self._forget_all()

    def _close(self) -> None:
        self.state = State.CLOSED
        self.cooldown_s = self.policy.cooldown_s
        self._forget_all()

    def _forget_all(self) -> None:
        self._successes.clear()
        self._succeeded = 0
        self._failed.clear()

    def _forget_before(self, cutoff: float) -> None:
        while self._successes and self._successes[0][0] < cutoff:
            self._succeeded -= int(self._successes.popleft()[1])
        while self._failed and next(iter(self._failed.values())) < cutoff:
            self._failed.popitem(last=False)
