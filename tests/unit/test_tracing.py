"""The trace from an input record to the CRM: with tracing on, one span per input record,
per job it makes and per POST attempt, each the parent of the next, under the caller's
trace; with it off, the caller's traceparent passes on unchanged."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from streams import tracing
from topics.records import WebhookJob

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = "00f067aa0ba902b7"
INCOMING = f"00-{TRACE}-{CALLER}-01"


def job(n: int) -> WebhookJob:
    return WebhookJob(f"d-{n}", "LivechatSession", "room-1", "http://crm.example/hook?k=s",
                      {}, "t", endpoint_id="crm")  # fmt: skip


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    yield exporter
    tracing.disable()


def test_an_input_record_its_jobs_and_their_posts_are_one_trace(
    spans: InMemorySpanExporter,
) -> None:
    with tracing.input_record(INCOMING, "omnichannel.rooms", 3, 42) as stamp:
        jobs = stamp([job(1), job(2)])
    with tracing.post_attempt(jobs[0], "POST", jobs[0].url) as (sent, done):
        done(503, None)
    finished = {s.name: s for s in spans.get_finished_spans()}
    record, post = finished["omnichannel.rooms process"], finished["POST LivechatSession"]
    made = [s for s in spans.get_finished_spans() if s.name == "webhook LivechatSession"]
    assert {format(s.context.trace_id, "032x") for s in spans.get_finished_spans()} == {TRACE}
    assert record.kind is SpanKind.CONSUMER and format(record.parent.span_id, "016x") == CALLER
    assert [s.parent.span_id for s in made] == [record.context.span_id] * 2
    assert post.kind is SpanKind.CLIENT and post.parent.span_id == made[0].context.span_id
    assert jobs[0].traceparent == f"00-{TRACE}-{made[0].context.span_id:016x}-01"
    assert sent == f"00-{TRACE}-{post.context.span_id:016x}-01"
    assert post.attributes["url.full"] == "http://crm.example/hook"  # no query: no secrets
    assert post.attributes["http.response.status_code"] == 503
    assert not post.status.is_ok


def test_with_tracing_off_the_callers_traceparent_passes_on_unchanged() -> None:
    assert not tracing.enabled()
    with tracing.input_record(INCOMING, "omnichannel.rooms", 0, 1) as stamp:
        jobs = stamp([job(1)])
    assert jobs[0].traceparent == INCOMING
    with tracing.post_attempt(jobs[0], "POST", jobs[0].url) as (sent, done):
        done(200, None)
    assert sent == INCOMING
    with tracing.input_record(None, "omnichannel.rooms", 0, 2) as stamp:
        assert stamp([job(2)])[0].traceparent is None


def test_the_header_is_found_among_a_records_headers() -> None:
    assert tracing.header_of([("other", b"x"), ("traceparent", INCOMING.encode())]) == INCOMING
    assert tracing.header_of(None) is None and tracing.header_of([]) is None


def test_a_close_made_from_many_records_links_to_their_spans(
    spans: InMemorySpanExporter,
) -> None:
    from streams.core.events import decode_message_event, decode_room_event
    from streams.core.sessions import Source
    from streams.dev import demo
    from streams.ops.samples import MAX_RECORD_BYTES
    from tests.unit.core.test_sessions import make

    processor, _, _ = make(send_on_close=True)
    records = demo.seed_conversation("room-1")
    closes = []
    for offset, record in enumerate(records):
        with tracing.input_record(None, record.topic.value, 0, offset) as stamp:
            source = Source(record.topic.value, 0, offset, tracing.current())
            if record.topic.value == "rooms":
                event = decode_room_event(record.key, record.encoded(), MAX_RECORD_BYTES)
                jobs = processor.on_room_event(event, source)  # type: ignore[arg-type]
            else:
                event = decode_message_event(record.key, record.encoded(), MAX_RECORD_BYTES)
                jobs = processor.on_message_event(event, source)
            closes += stamp(jobs)
    assert [j.type for j in closes] == ["LivechatSession"] and closes[0].links == ()
    inputs = [s for s in spans.get_finished_spans() if s.name.endswith(" process")]
    close = next(s for s in spans.get_finished_spans() if s.name == "webhook LivechatSession")
    assert len(inputs) == len(records) == 7
    assert {link.context.span_id for link in close.links} == {s.context.span_id for s in inputs}
