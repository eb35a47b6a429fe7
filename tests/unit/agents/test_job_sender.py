"""A job too big for the jobs topic is refused with its reason, never handed to Kafka."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from streams.agents.sessions import JobSender
from topics.catalogue import Topic, load_catalogue
from topics.records import WebhookJob


class Topic_:
    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []

    def get_topic_name(self) -> str:
        return "omnichannel.webhook-jobs"

    def send_soon(self, key: bytes, value: bytes, partition: int | None) -> None:
        self.sent.append((key, value, partition))


def test_a_job_over_half_the_topics_record_limit_is_refused_and_the_rest_go_out() -> None:
    jobs_topic = Topic_()
    omnihooks: Any = SimpleNamespace(
        app=SimpleNamespace(producer=None),
        topics={Topic.WEBHOOK_JOBS: jobs_topic, Topic.REJECTED: Topic_()},
        catalogue=load_catalogue(),
    )
    sender = JobSender(omnihooks)
    limit = load_catalogue()[Topic.WEBHOOK_JOBS].max_message_bytes // 2
    assert sender.max_job_bytes == limit
    small = WebhookJob("d-1", "Message", "r1", "http://crm/hook", {"text": "hi"}, "t")
    huge = WebhookJob("d-2", "LivechatSession", "r1", "http://crm/hook", {"x": "y" * limit}, "t")
    refused = sender.send([small, huge])
    assert [value for _, value, _ in jobs_topic.sent] == [small.to_json()]
    [reason] = refused
    assert "LivechatSession webhook d-2" in reason and f"over the {limit:,}" in reason
