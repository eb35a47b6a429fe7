"""Alerts through the real broker and real receivers: with two delivery workers whose breakers
both open and both close, the operators' alert endpoints get one "opened" and one "closed"
alert, then one "paused" and one "resumed" when an operator pauses the endpoint; the Slack
format arrives as a text message; an alert endpoint that fails raises no alert about itself."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from streams.settings import Settings
from tests.conftest import Broker
from tests.integration.test_delivery import make_job, send_jobs
from tests.integration.test_endpoint_health import BREAKER, endpoints_cli
from tests.support.harness import TopicReader, WorkerProcess, wait_until
from tests.support.receiver import Receiver
from topics.catalogue import Topic

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("heavy")]


def workers_reporting(health: TopicReader, kind: str, url: str) -> set[str]:
    health.poll(0.5)
    return {v["worker"] for v in health.values() if v["kind"] == kind and v["url"] == url}


def alerts_at(receiver: Receiver, path: str) -> list[str]:
    return [r.json()["alert"] for r in receiver.at(path) if r.status == 200]


def test_an_endpoint_failing_then_recovering_on_two_workers_is_alerted_once_each_way(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
    read_topic: Callable[[str], TopicReader],
) -> None:
    settings = settings_factory(**BREAKER)
    for args in (
        ("add", "pager", "--workspace", "ops", "--url", receiver.url("/ok/pager"),
         "--alerts", "all"),
        ("add", "chat", "--url", receiver.url("/ok/chat"), "--alerts", "workspace",
         "--alert-format", "slack"),
        # an alert endpoint that is down: it gets the alerts (retried), raises none of its own
        ("add", "broken", "--workspace", "ops", "--url", receiver.url("/status/500"),
         "--alerts", "all", "--retry-attempts", "0"),
    ):  # fmt: skip
        done = endpoints_cli(settings, *args)
        assert done.returncode == 0, done.stderr
    workers = [start_worker(settings, "delivery"), start_worker(settings, "delivery")]
    for worker in workers:
        worker.wait_for_log("Worker ready", timeout_s=90)
    health = read_topic(applied_topics[Topic.ENDPOINT_HEALTH])
    crm = receiver.url("/outage/crm-a")
    receiver.down.add("crm-a")
    jobs = [make_job(crm, n, room=f"room-{n}") for n in range(40)]
    send_jobs(kafka, applied_topics[Topic.WEBHOOK_JOBS], jobs)

    # both workers' breakers open: two transitions, one alert
    wait_until(lambda: len(workers_reporting(health, "opened", crm)) == 2, 90,
               lambda: f"opened by {workers_reporting(health, 'opened', crm)}")  # fmt: skip
    receiver.wait_for("/ok/pager", 1, timeout_s=30)
    receiver.down.discard("crm-a")
    wait_until(lambda: len(workers_reporting(health, "closed", crm)) == 2, 90,
               lambda: f"closed by {workers_reporting(health, 'closed', crm)}")  # fmt: skip
    receiver.wait_for("/ok/pager", 2, timeout_s=30)

    # An operator's pause and resume come after, through the same fold: once the resume is
    # alerted, any second opened or closed would have been too.
    assert endpoints_cli(settings, "pause", crm, "--reason", "CRM upgrade").returncode == 0
    assert endpoints_cli(settings, "resume", crm).returncode == 0
    wait_until(lambda: "endpoint_resumed" in alerts_at(receiver, "/ok/pager"), 60,
               lambda: f"alerts: {alerts_at(receiver, '/ok/pager')}")  # fmt: skip

    expected = ["endpoint_opened", "endpoint_closed", "endpoint_paused", "endpoint_resumed"]
    assert alerts_at(receiver, "/ok/pager") == expected
    pager = [r.json() for r in receiver.at("/ok/pager")]
    assert pager[0]["url"] == crm and pager[0]["reason"] == "HTTP 503"
    assert pager[2]["reason"] == "CRM upgrade"
    assert all(r.headers["webhook-id"] for r in receiver.at("/ok/pager"))

    receiver.wait_for("/ok/chat", 4, timeout_s=30)
    texts = [r.json()["text"] for r in receiver.at("/ok/chat")]
    assert len(texts) == 4 and "is failing: HTTP 503" in texts[0], texts
    assert "has recovered" in texts[1] and "paused by an operator: CRM upgrade" in texts[2]

    # the broken alert endpoint's breaker opened too (5 failing alert jobs would be needed;
    # its dead letters are what it makes here), and nothing was alerted about it
    broken = receiver.url("/status/500")
    assert len(receiver.at("/status/500")) >= 4
    assert not any(a["url"] == broken for a in pager)
    assert all(v["url"] != broken for v in health.values() if v["kind"] == "dead_letter")
