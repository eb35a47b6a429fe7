"""Every series the chart's alert rules and dashboard read is one a running worker exports
at /metrics, the consumer lag per partition among them (a real number once it has
committed)."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest

from streams.dev import demo
from streams.settings import Settings
from tests.conftest import Broker
from tests.support.harness import WorkerProcess, free_port, wait_until
from tests.support.monitoring import NOT_EXPORTED, series_named
from tests.support.receiver import Receiver
from topics.catalogue import Topic

pytestmark = pytest.mark.integration

SUFFIXES = ("_bucket", "_sum", "_count")


def exported(text: str, series: str) -> bool:
    """Whether the exposition declares `series` (a histogram's parts by the histogram)."""
    base = next((series[: -len(s)] for s in SUFFIXES if series.endswith(s)), series)
    return f"# TYPE {series} " in text or f"# TYPE {base} histogram" in text


def test_the_series_the_rules_and_dashboard_read_are_exported_by_a_worker(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
) -> None:
    port = free_port()
    settings = settings_factory(webhook_url=receiver.url("/ok"), send_on_close=True,
                                web_enabled=True, web_port=port)  # fmt: skip
    start_worker(settings).wait_for_log("Worker ready", timeout_s=90)
    demo.produce(kafka.bootstrap, settings.topic_prefix, demo.seed_conversation("metrics-room"))
    receiver.wait_for("/ok", 1, timeout_s=60)
    metrics = f"http://127.0.0.1:{port}/metrics"
    lag = re.compile(r'^omnihooks_consumer_lag\{partition="\d+",topic="[^"]+"\} (\d+\.\d+)$', re.M)
    wait_until(lambda: bool(lag.search(httpx.get(metrics, timeout=10).text)), 60,
               lambda: "no omnihooks_consumer_lag sample at /metrics")  # fmt: skip
    text = httpx.get(metrics, timeout=10).text
    wanted = series_named() - NOT_EXPORTED
    assert len(wanted) >= 8
    missing = sorted(series for series in wanted if not exported(text, series))
    assert not missing, f"the rules or the dashboard read series no worker exports: {missing}"
    assert not exported(text, "omnihooks_no_such_series_total")  # the check can fail
    changelog = settings.app_id + "-"
    assert all(not topic.startswith(changelog)
               for topic in re.findall(r'omnihooks_consumer_lag\{[^}]*topic="([^"]+)"', text))  # fmt: skip
