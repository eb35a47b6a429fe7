"""Failed attempts in the log: one full line per endpoint and window, then a count."""

from __future__ import annotations

import logging

import pytest

from streams.delivery.failure_log import FailureLog, endpoint_of


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def failures(clock: Clock, caplog: pytest.LogCaptureFixture) -> FailureLog:
    caplog.set_level(logging.INFO, "omnihooks.test.failures")
    return FailureLog(logging.getLogger("omnihooks.test.failures"), clock, window_s=10)


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def test_the_endpoint_is_scheme_host_and_port() -> None:
    assert (
        endpoint_of("https://crm.example.com:8443/hooks/rc?x=1") == "https://crm.example.com:8443"
    )


def test_the_endpoint_keeps_credentials_and_query_out_of_the_log() -> None:
    endpoint = endpoint_of("https://rc:s3cret@CRM.example.com/hook?token=t0k3n")
    assert endpoint == "https://crm.example.com"
    assert endpoint_of("http://crm:notaport/hook") == "http://crm"
    assert endpoint_of("http://[::1]:8080/hook") == "http://[::1]:8080"
    assert endpoint_of("http://a]b/") == "(invalid URL)"


def test_first_failure_in_full_then_a_count_when_the_window_ends(
    failures: FailureLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    for n in range(5):
        failures.failed("http://crm/a", "job %d failed: %s", n, "HTTP 500", reason="HTTP 500")
    failures.failed("http://crm/b", "job %d failed: %s", 9, "HTTP 503", reason="HTTP 503")
    failures.failed("http://other/x", "job %d failed: %s", 7, "timeout", reason="timeout")
    assert lines(caplog) == [
        "http://crm: job 0 failed: HTTP 500",
        "http://other: job 7 failed: timeout",
    ]
    clock.now += 9.9
    failures.flush()
    assert len(lines(caplog)) == 2  # the window is still open
    clock.now += 0.1
    failures.flush()
    assert lines(caplog)[2:] == ["http://crm: 5 more failed attempts in 10 s; the last: HTTP 503"]
    failures.failed("http://crm/a", "job %d failed: %s", 11, "HTTP 500", reason="HTTP 500")
    assert lines(caplog)[-1] == "http://crm: job 11 failed: HTTP 500"  # a new window, in full


def test_a_failure_after_the_window_summarizes_it_without_the_timer(
    failures: FailureLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    failures.failed("http://crm/a", "job %d", 1, reason="HTTP 500")
    failures.failed("http://crm/a", "job %d", 2, reason="timeout")
    clock.now += 30
    failures.failed("http://crm/a", "job %d", 3, reason="HTTP 500")
    assert lines(caplog) == [
        "http://crm: job 1",
        "http://crm: 1 more failed attempts in 10 s; the last: timeout",
        "http://crm: job 3",
    ]


def test_shutdown_writes_the_counts_of_open_windows(
    failures: FailureLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    failures.failed("http://crm/a", "job %d", 1, reason="HTTP 500")
    failures.failed("http://crm/a", "job %d", 2, reason="HTTP 502")
    failures.failed("http://quiet/a", "job %d", 3, reason="HTTP 500")
    clock.now += 4
    failures.flush()
    assert len(lines(caplog)) == 2
    failures.flush(everything=True)
    assert lines(caplog)[2:] == ["http://crm: 1 more failed attempts in 4 s; the last: HTTP 502"]
