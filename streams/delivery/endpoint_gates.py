"""One breaker per endpoint URL, operators' pauses, and the waiting that goes with them
(asyncio, no Kafka, no HTTP).

A job whose endpoint is open or paused waits in `wait_pass` until the endpoint lets an
attempt through: woken by the cool-down's end, a probe's outcome or a resume, in the order
the jobs began to wait. Nothing here decides what happens to a job; the delivery agents do.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from streams import metrics
from streams.core.breaker import STATE_NUMBER, Breaker, BreakerPolicy, Pass, State
from streams.core.endpoints import endpoint_label

ALWAYS = Pass(probe=False)
PAUSED_NUMBER = 3  # omnihooks_endpoint_state of a paused endpoint, beside STATE_NUMBER


@dataclass(frozen=True)
class EndpointStatus:
    endpoint: str
    state: str
    waiting: int
    failures: int
    reopen_in_s: float | None


class EndpointGates:
    def __init__(
        self, policy: BreakerPolicy | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.breaking = policy is not None  # off: only pauses hold jobs
        self.policy = policy or BreakerPolicy()
        self.clock = clock
        self.paused: set[str] = set()
        self._breakers: dict[str, Breaker] = {}
        self._queues: dict[str, deque[asyncio.Future[None]]] = {}
        self._shown: dict[str, tuple[int, int]] = {}

    def _breaker(self, url: str) -> Breaker:
        breaker = self._breakers.get(url)
        if breaker is None:
            breaker = self._breakers[url] = Breaker(self.policy)
        return breaker

    def try_pass(self, url: str) -> Pass | None:
        """Leave to attempt now, or None: the endpoint is open or paused, the job waits."""
        if url in self.paused:
            return None
        if not self.breaking:
            return ALWAYS
        breaker = self._breaker(url)
        leave = breaker.claim(self.clock())
        self._show(url)
        return leave

    def _wait_s(self, url: str) -> float | None:
        if url in self.paused or not self.breaking:
            return None  # until resumed
        return self._breaker(url).wait_s(self.clock())

    async def wait_pass(self, url: str, lease_s: float | None = None) -> Pass | None:
        """Leave to attempt, once the endpoint gives it; None if `lease_s` passes first.

        Waiters queue per endpoint and only the first one watches the clock (the cool-down's
        end) or a probe's outcome: thousands of held jobs cost no wake-ups while the
        endpoint stays open. Each waiter let through wakes the next, so they drain in the
        order they began to wait.
        """
        leave = self.try_pass(url)
        if leave is not None:
            return leave
        queue = self._queues.setdefault(url, deque())
        me: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(me)
        self._show(url)
        deadline = None if lease_s is None else self.clock() + lease_s
        try:
            while True:
                wait_s = self._wait_s(url) if queue[0] is me else None
                if deadline is not None:
                    left = deadline - self.clock()
                    if left <= 0:
                        return None
                    wait_s = left if wait_s is None else min(wait_s, left)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(me), timeout=wait_s)
                if me.done():  # woken: keep this place in line with a fresh future
                    fresh: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                    queue[queue.index(me)] = fresh
                    me = fresh
                leave = self.try_pass(url)
                if leave is not None:
                    return leave
        finally:
            queue.remove(me)
            self._wake(url)  # the next in line: let through too, or the new watcher
            self._show(url)

    def record(self, url: str, leave: Pass, delivery_id: str, failed: bool) -> bool | None:
        """The outcome of an attempt; returns True when it opened the endpoint's breaker,
        False when it closed it, None when neither."""
        if not self.breaking:
            return None
        breaker = self._breaker(url)
        before = breaker.state
        breaker.record(leave, delivery_id, failed, self.clock())
        if failed:
            metrics.ENDPOINT_FAILURES.labels(endpoint_label(url)).inc()  # failures are rarer
        if leave.probe or breaker.state is not before:
            self._wake(url)
        self._show(url)
        if (before is State.CLOSED) == (breaker.state is State.CLOSED):
            return None  # open and probing are both open
        return breaker.state is not State.CLOSED

    def open_urls(self) -> tuple[str, ...]:
        """The URLs whose breaker is open here (probing included)."""
        return tuple(sorted(u for u, b in self._breakers.items() if b.state is not State.CLOSED))

    def release(self, url: str, leave: Pass) -> None:
        if not self.breaking or not leave.probe:
            return
        self._breaker(url).release(leave, self.clock())
        self._wake(url)

    def set_paused(self, url: str, paused: bool) -> None:
        """An operator's pause (hold every job, attempt none) or resume (drain in order)."""
        if paused:
            self.paused.add(url)
        else:
            self.paused.discard(url)
            self._wake(url)
        self._show(url)

    def state(self, url: str) -> State:
        return self._breakers[url].state if url in self._breakers else State.CLOSED

    def statuses(self) -> list[EndpointStatus]:
        now = self.clock()
        out = []
        for url in sorted(set(self._breakers) | self.paused):
            breaker = self._breaker(url)
            wait = breaker.wait_s(now) if breaker.state is State.OPEN else None
            state = "paused" if url in self.paused else breaker.state.value
            out.append(
                EndpointStatus(
                    endpoint_label(url),
                    state,
                    self._waiting(url),
                    breaker.failures,
                    None if wait is None or url in self.paused else round(wait, 1),
                )
            )
        return out

    def _wake(self, url: str) -> None:
        queue = self._queues.get(url)
        if queue and not queue[0].done():
            queue[0].set_result(None)

    def _waiting(self, url: str) -> int:
        return len(self._queues.get(url, ()))

    def _show(self, url: str) -> None:
        state = self.state(url)
        number = PAUSED_NUMBER if url in self.paused else STATE_NUMBER[state]
        shown = (number, self._waiting(url))
        if self._shown.get(url) == shown:
            return  # the hot path: a closed endpoint, nothing held, per job
        self._shown[url] = shown
        label = endpoint_label(url)
        metrics.ENDPOINT_STATE.labels(label).set(number)
        metrics.ENDPOINT_WAITING.labels(label).set(shown[1])
