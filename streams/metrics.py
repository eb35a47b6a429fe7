"""Prometheus metrics of the worker, served at /metrics on its web port."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import REGISTRY, CounterMetricFamily
from prometheus_client.registry import Collector

from streams.core.endpoints import FILTER_ERRORS

POST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
DELIVERED = Counter("omnihooks_delivered", "Webhooks delivered (success answer)", ["type"])
FAILED_ATTEMPTS = Counter("omnihooks_failed_attempts", "POSTs that did not succeed", ["type"])
RETRIED = Counter("omnihooks_retried", "Jobs sent to the retries topic", ["type"])
DEAD_LETTERED = Counter("omnihooks_dead_lettered", "Jobs sent to the dead-letter topic", ["type"])
ALREADY_SETTLED = Counter(
    "omnihooks_already_settled", "Jobs read again after a crash and not POSTed again", ["type"]
)
IN_FLIGHT = Gauge("omnihooks_in_flight", "POSTs waiting for an answer")
LATENCY = Histogram(
    "omnihooks_post_seconds",
    "Time from sending a POST to its answer (or error)",
    buckets=POST_BUCKETS,
)
JOBS_EMITTED = Counter(
    "omnihooks_jobs_emitted", "Webhook jobs emitted by the session pipeline", ["type"]
)
ENDPOINT_STATE = Gauge(
    "omnihooks_endpoint_state",
    "Circuit breaker per endpoint: 0 closed, 1 open, 2 probing, 3 paused by an operator",
    ["endpoint"],
)
ENDPOINT_WAITING = Gauge(
    "omnihooks_endpoint_waiting", "Jobs held in this worker until the endpoint closes", ["endpoint"]
)
ENDPOINT_FAILURES = Counter(
    "omnihooks_endpoint_failures", "Failed attempts per endpoint (retriable ones)", ["endpoint"]
)
HELD = Counter(
    "omnihooks_held",
    "Fresh jobs moved to the retries topic because their endpoint was open",
    ["type"],
)
ORDER_WAITING = Gauge(
    "omnihooks_order_waiting", "Jobs waiting for an earlier job of their room (ordered delivery)"
)
ORDER_PARKED = Counter(
    "omnihooks_order_parked",
    "Fresh jobs moved to the retries topic behind an earlier job of their room",
    ["type"],
)
# Per endpoint (its URL as endpoint_label() gives it), for the console and for alerts on one
# CRM: every attempt's outcome and its POST time.
ENDPOINT_OUTCOMES = Counter(
    "omnihooks_endpoint_outcomes",
    "Attempts per endpoint by outcome: delivered, retry (failed, to be tried again), "
    "dead_letter (failed, no attempt left)",
    ["endpoint", "outcome"],
)
ENDPOINT_POST_SECONDS = Histogram(
    "omnihooks_endpoint_post_seconds",
    "Time from sending a POST to its answer (or error), per endpoint",
    ["endpoint"],
    buckets=POST_BUCKETS,
)
REJECTED = Counter("omnihooks_rejected", "Input records sent to the rejected topic", ["topic"])
CONSUMER_LAG = Gauge(
    "omnihooks_consumer_lag",
    "Records on the broker after this worker's committed offset, per input partition it owns",
    ["topic", "partition"],
)


class FilterErrors(Collector):
    """Webhooks an endpoint's filter failed on (no match, not sent): the pure core counts
    them, this reads its count."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "omnihooks_filter_errors", "Webhooks an endpoint's filter failed on (not sent)",
            labels=["endpoint"],
        )  # fmt: skip
        for endpoint, count in sorted(FILTER_ERRORS.items()):
            family.add_metric([endpoint], count)
        yield family


REGISTRY.register(FilterErrors())


def exposition() -> tuple[bytes, str]:
    """The text exposition format and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
