"""What a delivery worker tells the alert agent: each fact once, in order, the unsent ones
again after a failed write (never those already written)."""

from __future__ import annotations

from typing import Any

import pytest

from streams.core.breaker import BreakerPolicy
from streams.delivery.endpoint_gates import EndpointGates
from streams.delivery.health_report import HealthReport
from topics.records import HealthEvent, WebhookJob


class Topic:
    """Takes `fail_at` writes, then refuses one."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.sent: list[HealthEvent] = []
        self.fail_at = fail_at

    async def send(self, key: bytes, value: bytes) -> Any:
        if self.fail_at is not None and len(self.sent) == self.fail_at:
            self.fail_at = None
            raise RuntimeError("broker gone")
        self.sent.append(HealthEvent.from_json(value))

        async def acked() -> None:
            return None

        return acked()


def job(n: int) -> WebhookJob:
    return WebhookJob(f"d{n}", "Message", "room", f"http://crm/{n}", {}, "t", workspace="acme")


async def test_a_write_that_fails_sends_again_only_what_was_not_written() -> None:
    topic = Topic(fail_at=1)
    report = HealthReport(topic, "w1", EndpointGates(BreakerPolicy()))
    for n in range(3):
        report.dead_lettered(job(n), "HTTP 500")
    with pytest.raises(RuntimeError):
        await report.flush()
    await report.flush()
    assert [e.url for e in topic.sent] == ["http://crm/0", "http://crm/1", "http://crm/2"]


async def test_an_alert_jobs_dead_letter_is_not_reported() -> None:
    topic = Topic()
    report = HealthReport(topic, "w1", EndpointGates(BreakerPolicy()))
    alert = WebhookJob("a", "omnihooks.alert", None, "http://ops/alerts", {}, "t")
    report.dead_lettered(alert, "HTTP 500")
    report.heartbeat()
    await report.flush()
    assert [e.kind for e in topic.sent] == ["heartbeat"]
