"""A trace from the chat server's event to the CRM's request, through a real broker, a
worker exporting OTLP to a real HTTP collector and a real receiver: the event's
`traceparent` Kafka header starts it, the CRM's request carries it on, and the exported
spans chain record → job → POST under the caller's span."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import Producer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from streams.dev import demo
from streams.settings import Settings
from tests.conftest import Broker
from tests.support.harness import WorkerProcess, wait_until
from tests.support.receiver import Receiver
from topics.catalogue import Topic

pytestmark = pytest.mark.integration

TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER = "b7ad6b7169203331"


def exported_spans(receiver: Receiver) -> dict[bytes, object]:
    spans: dict[bytes, object] = {}
    for request in receiver.at("/otlp/v1/traces"):
        export = ExportTraceServiceRequest()
        export.ParseFromString(request.body)
        for resource in export.resource_spans:
            for scope in resource.scope_spans:
                spans.update({span.span_id: span for span in scope.spans})
    return spans


def test_the_crms_request_carries_the_events_trace_and_the_spans_chain_to_it(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
) -> None:
    settings = settings_factory(webhook_url=receiver.url("/ok/crm"), send_on_close=True,
                                otlp_endpoint=receiver.url("/otlp"))  # fmt: skip
    start_worker(settings).wait_for_log("Worker ready", timeout_s=90)
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    for record in demo.seed_conversation("traced-room"):
        producer.produce(f"{settings.topic_prefix}{record.topic.value}", key=record.key,
                         value=record.encoded(),
                         headers=[("traceparent", f"00-{TRACE}-{CALLER}-01".encode())])  # fmt: skip
    assert producer.flush(30) == 0

    close = receiver.wait_for("/ok/crm", 1, timeout_s=60)[0]
    version, trace_id, post_id, flags = close.headers["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE, "01") and post_id != CALLER

    def chain() -> list[str]:
        spans = exported_spans(receiver)
        post = spans.get(bytes.fromhex(post_id))
        names = []
        while post is not None:
            names.append(post.name)  # type: ignore[attr-defined]
            parent = post.parent_span_id  # type: ignore[attr-defined]
            if parent == bytes.fromhex(CALLER):
                names.append("caller")
            post = spans.get(parent)
        return names

    wait_until(lambda: chain()[-1:] == ["caller"], 30, lambda: f"span chain {chain()}")
    post, job, record, caller = chain()
    assert (post, job, caller) == ("POST LivechatSession", "webhook LivechatSession", "caller")
    # the record that completed the close: the close event, or the transcript's last message
    assert record in {f"{settings.topic_prefix}{t} process" for t in ("rooms", "messages")}
