"""Traces from the chat event to the CRM's answer, with OpenTelemetry.

The W3C trace context comes in as a `traceparent` Kafka header on the input record (the
ingest server writes the one of Rocket.Chat's request on the record it stores), travels in
each job (`WebhookJob.traceparent`, through retries and dead letters) and goes out as the
`traceparent` header of every POST to the CRM.

Spans are made only when an OTLP endpoint is set (`OMNIHOOKS_OTLP_ENDPOINT`): one per input
record (a consumer span, the incoming context its parent), one per webhook job it makes,
one per POST attempt (a client span, the job's its parent); they are exported in batches
over OTLP/HTTP. Without an endpoint nothing is made and the incoming `traceparent` is passed
on unchanged, so a CRM still joins the caller's trace.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from msgspec.structs import replace
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from streams.core.endpoints import endpoint_label
from topics.records import WebhookJob

HEADER = "traceparent"
_PROPAGATOR = TraceContextTextMapPropagator()
_tracer: trace.Tracer | None = None  # set by `enable`: spans are made only then


def enable(provider: Any) -> None:
    """Make spans with `provider` (a TracerProvider: OTLP in a worker, memory in tests)."""
    global _tracer
    _tracer = provider.get_tracer("omnihooks")


def disable() -> None:
    global _tracer
    _tracer = None


def enabled() -> bool:
    return _tracer is not None


def setup_otlp(endpoint: str, service: str) -> None:
    """Export this process's spans to an OTLP/HTTP collector at `endpoint`."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    url = endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    enable(provider)


def header_of(headers: Any) -> str | None:
    """The `traceparent` among a Kafka record's headers (a list of pairs, or None)."""
    if not headers:
        return None
    pairs = headers.items() if isinstance(headers, dict) else headers
    for name, value in pairs:
        if name == HEADER and value:
            return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    return None


def _context(traceparent: str | None) -> Context | None:
    """The parent a `traceparent` names, as a context; None when it names none. Parsed here
    (a W3C header is four hex fields), not by the propagator: this runs for every POST."""
    if not traceparent:
        return None
    parts = traceparent.split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return _PROPAGATOR.extract({HEADER: traceparent})  # anything odd: the full rules
    try:
        parent = SpanContext(int(parts[1], 16), int(parts[2], 16), is_remote=True,
                             trace_flags=TraceFlags(int(parts[3][:2], 16)))  # fmt: skip
    except ValueError:
        return None
    return trace.set_span_in_context(NonRecordingSpan(parent)) if parent.is_valid else None


def _traceparent(span: Span) -> str:
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


@lru_cache(maxsize=1024)
def _label(url: str) -> str:
    return endpoint_label(url)


@contextmanager
def input_record(traceparent: str | None, topic: str, partition: int, offset: int) -> Iterator[Any]:
    """Around one input record's processing; yields `stamp(jobs)`, which gives each job
    made the trace context it carries on (a span of its own when tracing)."""
    tracer = _tracer
    if tracer is None:
        yield lambda jobs: _passed_on(traceparent, jobs)
        return
    attributes: dict[str, str | int] = {
        "messaging.system": "kafka", "messaging.destination.name": topic,
        "messaging.destination.partition.id": str(partition), "messaging.kafka.offset": offset,
    }  # fmt: skip
    with tracer.start_as_current_span(f"{topic} process", context=_context(traceparent),
                                      kind=SpanKind.CONSUMER, attributes=attributes):  # fmt: skip

        def stamp(jobs: Sequence[WebhookJob]) -> list[WebhookJob]:
            stamped = []
            for job in jobs:
                with tracer.start_as_current_span(
                    f"webhook {job.type}",
                    attributes={"omnihooks.delivery_id": job.delivery_id,
                                "omnihooks.endpoint": job.endpoint_id or "default"},
                    links=_links(job.links),
                ) as span:  # fmt: skip
                    stamped.append(replace(job, traceparent=_traceparent(span), links=()))
            return stamped

        yield stamp


def _passed_on(traceparent: str | None, jobs: Sequence[WebhookJob]) -> list[WebhookJob]:
    jobs = [replace(job, links=()) if job.links else job for job in jobs]
    if traceparent is None:
        return jobs
    return [replace(job, traceparent=traceparent) for job in jobs]


def current() -> str | None:
    """The trace context of the span under way (the input record's), while tracing: what
    a room keeps of each record for its close's links. None when not tracing."""
    if _tracer is None:
        return None
    span = trace.get_current_span()
    return _traceparent(span) if span.get_span_context().is_valid else None


def _links(traceparents: Sequence[str]) -> list[Link]:
    links = []
    for traceparent in traceparents:
        parent = _context(traceparent)
        if parent is not None:
            links.append(Link(trace.get_current_span(parent).get_span_context()))
    return links


@contextmanager
def post_attempt(job: WebhookJob, method: str, url: str) -> Iterator[Any]:
    """Around one POST; yields (the `traceparent` to send or None, `done(status, error)`)."""
    tracer = _tracer
    if tracer is None:
        yield job.traceparent, _nothing
        return
    # Not made the current span: nothing runs under it but the request, and attaching a
    # context costs on every POST.
    span = tracer.start_span(
        f"{method} {job.type}", context=_context(job.traceparent), kind=SpanKind.CLIENT,
        attributes={"http.request.method": method, "url.full": _label(url),
                    "omnihooks.delivery_id": job.delivery_id},
    )  # fmt: skip

    def done(status: int | None, error: str | None) -> None:
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if error is not None or status is None or status >= 400:
            span.set_status(Status(StatusCode.ERROR, error or f"HTTP {status}"))

    try:
        yield _traceparent(span), done
    finally:
        span.end()


def _nothing(status: int | None, error: str | None) -> None:
    return None
