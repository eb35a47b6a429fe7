"""Every way a receiver can fail, against the real broker and a real HTTP receiver: each job
ends as the rules say, with the right attempt record; nothing is lost."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streams.settings import Settings
from tests.conftest import Broker
from tests.integration.test_delivery import make_job, send_jobs
from tests.support.harness import TopicReader, WorkerProcess, free_port
from tests.support.receiver import Receiver
from topics.catalogue import Topic

pytestmark = pytest.mark.integration


# path -> (expected attempt outcome: status or error prefix)
FAULTS: dict[str, int | str] = {
    "/status/500": 500,
    "/status/429": 429,
    "/status/404": 404,
    "/hang": "timeout",
    "/reset": "server disconnected",
    "/trickle": "HTTP 200 then timeout",
    "/redirect": 302,
}


def test_receiver_faults_end_as_the_rules_say(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
    read_topic: Callable[[str], TopicReader],
    report: Callable[[str], None],
) -> None:
    settings = settings_factory(
        retry_attempts=1, retry_delay_s=0.2, http_timeout_ms=1500, secret_token="never-logged",
        response_excerpt_bytes=64, crm_data_max_bytes=1024,
    )  # fmt: skip
    worker = start_worker(settings, "delivery")
    jobs = {
        path: make_job(receiver.url(path), room=f"room{path.replace('/', '-')}") for path in FAULTS
    }
    refused = make_job(f"http://127.0.0.1:{free_port()}/hook", room="room-refused")
    huge = make_job(receiver.url("/huge"), room="room-huge")
    send_jobs(kafka, applied_topics[Topic.WEBHOOK_JOBS], [*jobs.values(), refused, huge])

    expected_dead = len(jobs) + 1
    letters = read_topic(applied_topics[Topic.WEBHOOK_DEAD_LETTERS]).wait_for(
        expected_dead, timeout_s=120
    )
    by_id = {letter["job"]["delivery_id"]: letter for letter in letters}
    for path, outcome in FAULTS.items():
        letter = by_id[jobs[path].delivery_id]
        assert len(letter["attempts"]) == 2, path
        for attempt in letter["attempts"]:
            if isinstance(outcome, int):
                assert attempt["status"] == outcome and attempt["error"] is None, (path, attempt)
            else:
                assert attempt["status"] is None and attempt["error"].startswith(outcome), (
                    path,
                    attempt,
                )
            excerpt = attempt.get("response_excerpt")
            assert excerpt is None or len(excerpt) <= 64
        assert len(receiver.at(path)) == 2
    refused_letter = by_id[refused.delivery_id]
    assert refused_letter["attempts"][0]["error"].startswith("connection error")

    # A 200 with a 10 MB body is delivered; the body is too big to keep as crmData.
    assert huge.delivery_id not in by_id
    assert len(receiver.at("/huge")) == 1
    crm = read_topic(applied_topics[Topic.CRM_DATA]).settle(2)
    assert all(record["room_id"] != "room-huge" for record in crm)

    # The secret token is neither logged nor stored with the dead letters.
    assert "never-logged" not in worker.log()
    raw = [r.value() for r in read_topic(applied_topics[Topic.WEBHOOK_DEAD_LETTERS]).records]
    assert not any(b"never-logged" in value for value in raw)
    report(
        f"receiver faults: {len(FAULTS) + 2} injected, {len(FAULTS) + 3} jobs sent, 1 delivered, "
        f"{expected_dead} dead-lettered, 0 lost"
    )


def test_private_urls_are_refused_when_blocking_is_on(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
    read_topic: Callable[[str], TopicReader],
) -> None:
    start_worker(settings_factory(block_private_urls=True), "delivery")
    job = make_job(receiver.url("/ok"))
    send_jobs(kafka, applied_topics[Topic.WEBHOOK_JOBS], [job])
    [letter] = read_topic(applied_topics[Topic.WEBHOOK_DEAD_LETTERS]).wait_for(1, timeout_s=90)
    assert letter["job"]["delivery_id"] == job.delivery_id
    [attempt] = letter["attempts"]  # not retried: no retry can fix the address
    assert attempt["error"].startswith("blocked: 127.0.0.1 resolves to the non-public address")
    assert receiver.at("/ok") == []


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[Receiver]:
    """An HTTPS receiver with a self-signed certificate no CA vouches for."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = Receiver(ssl_context=context).start()
    yield server
    server.stop()


def test_tls_is_verified_unless_turned_off(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    tls_receiver: Receiver,
    read_topic: Callable[[str], TopicReader],
) -> None:
    verifying = settings_factory(retry_attempts=0)
    start_worker(verifying, "delivery")
    job = make_job(tls_receiver.url("/ok"), room="room-tls")
    send_jobs(kafka, applied_topics[Topic.WEBHOOK_JOBS], [job])
    [letter] = read_topic(applied_topics[Topic.WEBHOOK_DEAD_LETTERS]).wait_for(1, timeout_s=90)
    assert letter["attempts"][0]["error"] == "connection error: SSLCertVerificationError"
    assert tls_receiver.at("/ok") == []  # the handshake failed: no request reached it

    lenient = settings_factory(tls_verify=False, app_id=verifying.app_id + "-insecure")
    start_worker(lenient, "delivery")
    [request] = tls_receiver.wait_for("/ok", 1, timeout_s=90)
    assert request.headers["webhook-id"] == job.delivery_id
