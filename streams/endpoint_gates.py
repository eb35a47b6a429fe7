"""One breaker per endpoint URL, and the waiting that goes with it (asyncio, no Kafka, no HTTP).

A job whose endpoint is open waits in `wait_pass` until its endpoint's breaker lets an
attempt through: woken by the cool-down's end or by a probe's outcome, in the order the
jobs began to wait. Nothing here decides what happens to a job; the delivery agents do.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
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
        self._changed: dict[str, asyncio.Event] = {}
        self._waiting: dict[str, int] = {}

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
        """Leave to attempt, once the endpoint's breaker gives it."""
        leave = self.try_pass(url)
        if leave is not None:
            return leave
        self._waiting[url] = self._waiting.get(url, 0) + 1
        self._show(url, self._breaker(url))
        try:
            while True:
                changed = self._changed.setdefault(url, asyncio.Event())
                wait_s = self._breaker(url).wait_s(self.clock())
                # a probe's end wakes everyone; without one out, the cool-down's end does
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), timeout=wait_s)
                leave = self.try_pass(url)
                if leave is not None:
                    return leave
        finally:
            self._waiting[url] -= 1
            if url in self._breakers:
                self._show(url, self._breakers[url])

    def record(self, url: str, leave: Pass, delivery_id: str, failed: bool) -> None:
        if self.policy is None:
            return
        breaker = self._breaker(url)
        before = breaker.state
        breaker.record(leave, delivery_id, failed, self.clock())
        if failed:
            metrics.ENDPOINT_FAILURES.labels(endpoint_label(url)).inc()
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
                    self._waiting.get(url, 0),
                    breaker.failures,
                    None if wait is None else round(wait, 1),
                )
            )
        return out

    def _wake(self, url: str) -> None:
        changed = self._changed.pop(url, None)
        if changed is not None:
            changed.set()

    def _show(self, url: str, breaker: Breaker) -> None:
        label = endpoint_label(url)
        metrics.ENDPOINT_STATE.labels(label).set(STATE_NUMBER[breaker.state])
        metrics.ENDPOINT_WAITING.labels(label).set(self._waiting.get(url, 0))
