"""One breaker per endpoint URL, and the waiting that goes with it (asyncio, no Kafka, no HTTP).

A job whose endpoint is open waits in `wait_pass` until its endpoint's breaker lets an
attempt through: woken by the cool-down's end or by a probe's outcome, in the order the
jobs began to wait. Nothing here decides what happens to a job; the delivery agents do.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from streams import metrics
from streams.breaker import STATE_NUMBER, Breaker, BreakerPolicy, Pass, State

ALWAYS = Pass(probe=False)


def endpoint_label(url: str) -> str:
    """The URL as a metrics label: scheme, host and path only, since a query string or
    user info may hold a CRM's credentials."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


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
        self.policy = policy  # None: no breaking, every attempt goes
        self.clock = clock
        self._breakers: dict[str, Breaker] = {}
        self._queues: dict[str, deque[asyncio.Future[None]]] = {}
        self._shown: dict[str, tuple[State, int]] = {}

    def _breaker(self, url: str) -> Breaker:
        breaker = self._breakers.get(url)
        if breaker is None:
            assert self.policy is not None
            breaker = self._breakers[url] = Breaker(self.policy)
        return breaker

    def try_pass(self, url: str) -> Pass | None:
        """Leave to attempt now, or None: the endpoint is open and the job must wait."""
        if self.policy is None:
            return ALWAYS
        breaker = self._breaker(url)
        leave = breaker.claim(self.clock())
        self._show(url, breaker)
        return leave

    async def wait_pass(self, url: str) -> Pass:
        """Leave to attempt, once the endpoint's breaker gives it.

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
        self._show(url, self._breaker(url))
        try:
            while True:
                wait_s = self._breaker(url).wait_s(self.clock()) if queue[0] is me else None
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
            self._show(url, self._breaker(url))

    def record(self, url: str, leave: Pass, delivery_id: str, failed: bool) -> None:
        if self.policy is None:
            return
        breaker = self._breaker(url)
        before = breaker.state
        breaker.record(leave, delivery_id, failed, self.clock())
        if failed:
            metrics.ENDPOINT_FAILURES.labels(endpoint_label(url)).inc()  # failures are rarer
        if leave.probe or breaker.state is not before:
            self._wake(url)
        self._show(url, breaker)

    def release(self, url: str, leave: Pass) -> None:
        if self.policy is None or not leave.probe:
            return
        self._breaker(url).release(leave, self.clock())
        self._wake(url)

    def state(self, url: str) -> State:
        return self._breakers[url].state if url in self._breakers else State.CLOSED

    def statuses(self) -> list[EndpointStatus]:
        now = self.clock()
        out = []
        for url, breaker in sorted(self._breakers.items()):
            wait = breaker.wait_s(now) if breaker.state is State.OPEN else None
            out.append(
                EndpointStatus(
                    endpoint_label(url),
                    breaker.state.value,
                    self._waiting(url),
                    breaker.failures,
                    None if wait is None else round(wait, 1),
                )
            )
        return out

    def _wake(self, url: str) -> None:
        queue = self._queues.get(url)
        if queue and not queue[0].done():
            queue[0].set_result(None)

    def _waiting(self, url: str) -> int:
        return len(self._queues.get(url, ()))

    def _show(self, url: str, breaker: Breaker) -> None:
        shown = (breaker.state, self._waiting(url))
        if self._shown.get(url) == shown:
            return  # the hot path: a closed endpoint, nothing held, per job
        self._shown[url] = shown
        label = endpoint_label(url)
        metrics.ENDPOINT_STATE.labels(label).set(STATE_NUMBER[breaker.state])
        metrics.ENDPOINT_WAITING.labels(label).set(shown[1])
