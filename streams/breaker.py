"""A circuit breaker per endpoint, as a function of outcomes and time: no I/O, no clock.

Closed, an endpoint takes every attempt. When at least `min_jobs` distinct jobs were tried in
the last `window_s` and `failure_ratio` of them failed, it opens: no attempt goes to it and
its jobs wait (the delivery edge holds them in Kafka without spending attempts). After a
cool-down one attempt goes as a probe: its success closes the endpoint, its failure opens it
again for twice the cool-down (up to `max_cooldown_s`).

Jobs, not attempts, are counted so that one job failing its ten retries alone never opens
the endpoint: a lone failing job is dead-lettered as Rocket.Chat's rule says, and only an
endpoint that fails many jobs is held. An endpoint open longer than `max_hold_s` (below
the retries topic's retention, so nothing held is deleted unread) gives up holding: its
jobs spend their attempts again and end as dead letters, which are kept and replayable.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum


class State(Enum):
    CLOSED = "closed"
    OPEN = "open"
    PROBING = "probing"  # open, one probe attempt in flight
    GIVEN_UP = "given-up"  # open past max_hold_s: attempts go again, to their dead letters


STATE_NUMBER = {State.CLOSED: 0, State.OPEN: 1, State.PROBING: 2, State.GIVEN_UP: 3}


@dataclass(frozen=True)
class BreakerPolicy:
    failure_ratio: float = 0.5
    min_jobs: int = 10
    window_s: float = 60.0
    cooldown_s: float = 30.0
    max_cooldown_s: float = 300.0
    max_hold_s: float = 3 * 86400.0


@dataclass(frozen=True)
class Pass:
    """Leave for one attempt; a probe's outcome decides the endpoint's state."""

    probe: bool


class Breaker:
    def __init__(self, policy: BreakerPolicy) -> None:
        self.policy = policy
        self.state = State.CLOSED
        self.reopen_at = 0.0
        self.opened_at = 0.0
        self.cooldown_s = policy.cooldown_s
        self.failures = 0  # failed attempts recorded, all time (for /metrics)
        # delivery id -> (time of its last outcome, whether it failed), oldest first
        self._window: OrderedDict[str, tuple[float, bool]] = OrderedDict()
        self._failing = 0  # how many in the window failed: kept, not counted, per outcome

    def claim(self, now: float) -> Pass | None:
        """Leave to attempt now, or None while the endpoint is open (the job waits)."""
        if self.state is State.CLOSED or self.state is State.GIVEN_UP:
            return Pass(probe=False)
        if self.state is State.OPEN and now >= self.reopen_at:
            if now - self.opened_at >= self.policy.max_hold_s:
                self.state = State.GIVEN_UP
                return Pass(probe=False)
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
                self._open(now, reset_since=False)
            else:
                self._close()
            return
        if self.state is State.GIVEN_UP:
            if not failed:
                self._close()
            return
        if self.state is not State.CLOSED:
            return  # an attempt let through before the endpoint opened: the probe decides
        earlier = self._window.pop(delivery_id, None)
        if earlier is not None and earlier[1]:
            self._failing -= 1
        self._window[delivery_id] = (now, failed)
        self._failing += failed
        self._forget_before(now - self.policy.window_s)
        tried = len(self._window)
        if tried >= self.policy.min_jobs and self._failing >= self.policy.failure_ratio * tried:
            self._open(now, reset_since=True)

    def release(self, leave: Pass, now: float) -> None:
        """An attempt allowed but never made (the job was settled already, or shutdown): a
        probe that never went leaves the endpoint open, ready for the next one."""
        if leave.probe and self.state is State.PROBING:
            self.state = State.OPEN
            self.reopen_at = now

    def _open(self, now: float, reset_since: bool) -> None:
        self.state = State.OPEN
        if reset_since:
            self.opened_at = now
        self.reopen_at = now + self.cooldown_s
        self._window.clear()
        self._failing = 0

    def _close(self) -> None:
        self.state = State.CLOSED
        self.cooldown_s = self.policy.cooldown_s
        self._window.clear()
        self._failing = 0

    def _forget_before(self, cutoff: float) -> None:
        while self._window:
            first = next(iter(self._window.values()))
            if first[0] >= cutoff:
                return
            self._failing -= self._window.popitem(last=False)[1][1]
