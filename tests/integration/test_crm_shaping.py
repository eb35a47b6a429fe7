"""Straight into the CRM, through a real broker, a worker and real receivers: per-endpoint
filters and templates (the exact bytes, method, path and headers received), receiver
authentication (static headers, basic auth, OAuth2 client credentials against an RFC 6749
token endpoint built on oauthlib, a 401 that refreshes the token without spending an
attempt, a receiver that requires a client certificate), and an endpoint's current state
applied at every attempt (a moved URL, a disabled endpoint, a template put right)."""

from __future__ import annotations

import base64
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streams.core.expressions import render
from streams.dev import demo
from streams.dev.certificates import CertificateAuthority
from streams.settings import Settings
from tests.conftest import Broker
from tests.support.harness import TopicReader, WorkerProcess, omnihooks_cli, wait_until
from tests.support.receiver import Received, Receiver
from topics.catalogue import Topic

pytestmark = pytest.mark.integration

NOTE = (
    '{method: "PUT", path: "/notes?room=\\(._id)", headers: {"X-Room": ._id},'
    ' body: {properties: {hs_note_body: "Chat with \\(.visitor.name): \\(.messages | length)'
    ' messages", hs_timestamp: .closedAt}}}'
)


def cli(settings: Settings, *args: str) -> str:
    done = omnihooks_cli(settings, "endpoints", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def received(receiver: Receiver, path: str, count: int = 1) -> list[Received]:
    wait_until(lambda: len(receiver.at(path)) >= count, 90,
               lambda: f"{path}: {len(receiver.at(path))} of {count} requests")  # fmt: skip
    return receiver.at(path)


@pytest.fixture
def https_receiver(tmp_path: Path) -> Iterator[tuple[Receiver, CertificateAuthority]]:
    """An HTTPS receiver that requires a client certificate its CA issued."""
    ca = CertificateAuthority.create(tmp_path / "tls", "receiver-ca")
    server = ca.issue(tmp_path / "tls", "receiver", "receiver", hosts=("127.0.0.1",))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca.certificate))
    context.load_cert_chain(server.certificate, server.key)
    context.verify_mode = ssl.CERT_REQUIRED
    receiver = Receiver(ssl_context=context).start()
    yield receiver, ca
    receiver.stop()


@pytest.fixture
def worker_settings(
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
) -> Settings:
    # No OMNIHOOKS_WEBHOOK_URL: every endpoint comes from the endpoints topic. A retry would
    # come 30 s later: a delivery in seconds spent none.
    settings = settings_factory(retry_attempts=3, retry_delay_s=30)
    start_worker(settings, "all").wait_for_log("Worker ready", timeout_s=90)
    return settings


def test_filters_templates_and_receiver_authentication_per_endpoint(
    kafka: Broker,
    worker_settings: Settings,
    receiver: Receiver,
    https_receiver: tuple[Receiver, CertificateAuthority],
    tmp_path: Path,
) -> None:
    settings = worker_settings
    secure, ca = https_receiver
    client = ca.issue(tmp_path / "tls", "omnihooks", "omnihooks")
    closes = "--triggers=close"
    cli(settings, "add", "plain", "--url", receiver.url("/ok/plain"), closes)
    cli(settings, "add", "hubspot", "--url", receiver.url("/ok/hubspot"), closes,
        "--template", NOTE, "--header", "X-Api-Key=hs-key-1234567")  # fmt: skip
    cli(settings, "add", "closes-only", "--url", receiver.url("/ok/closes-only"),
        "--triggers=visitor_message,close", "--filter", '.type == "LivechatSession"')  # fmt: skip
    cli(settings, "add", "basic", "--url", receiver.url("/ok/basic"), closes,
        "--basic-auth", "crm-user:crm-pass")  # fmt: skip
    cli(settings, "add", "oauth", "--url", receiver.url("/bearer"), closes,
        "--oauth2-token-url", receiver.url("/token"), "--oauth2-client-id", "omnihooks",
        "--oauth2-client-secret", "s3cret-client", "--oauth2-scope", "crm.write")  # fmt: skip
    cli(settings, "add", "mtls", "--url", secure.url("/ok/mtls"), closes,
        "--client-cert", str(client.certificate), "--client-key", str(client.key),
        "--ca-bundle", str(ca.certificate))  # fmt: skip
    cli(settings, "add", "no-cert", "--url", secure.url("/ok/no-cert"), closes,
        "--ca-bundle", str(ca.certificate), "--retry-attempts", "0")  # fmt: skip
    receiver.tokens.refuse_next = 1  # the first token is revoked after it is issued: a 401
    demo.produce(kafka.bootstrap, settings.topic_prefix, demo.seed_conversation("crm-room"))

    rocketchat = received(receiver, "/ok/plain")[0]
    assert rocketchat.json()["type"] == "LivechatSession"

    # A template: the body it makes, exactly, and the method, path and headers.
    note = received(receiver, "/ok/hubspot/notes")[0]
    made = render(NOTE, rocketchat.body)
    assert (note.method, note.query, note.body) == ("PUT", "room=crm-room", made.body)
    assert note.headers["X-Room"] == "crm-room"
    assert note.headers["X-Api-Key"] == "hs-key-1234567"
    assert note.headers["webhook-id"]  # the webhook's identity stays ours

    # A filter: only the close, numbered 1 (a filtered-out webhook leaves no gap).
    only = received(receiver, "/ok/closes-only")
    assert [(r.json()["type"], r.headers["webhook-sequence"]) for r in only] == [
        ("LivechatSession", "1")
    ]

    basic = received(receiver, "/ok/basic")[0]
    assert (
        basic.headers["Authorization"] == "Basic " + base64.b64encode(b"crm-user:crm-pass").decode()
    )

    # OAuth2: a 401 for the revoked token, a new token, the same attempt at once.
    wait_until(lambda: [r.status for r in receiver.at("/bearer")] == [401, 200], 60,
               lambda: f"/bearer answered {[r.status for r in receiver.at('/bearer')]}")  # fmt: skip
    first, second = receiver.at("/bearer")
    assert second.at - first.at < 10  # not the 30 s retry delay: no attempt was spent
    assert len(receiver.tokens.issued) == 1 and first.headers["Authorization"] != second.headers["Authorization"]  # fmt: skip
    assert receiver.tokens.requests[-1]["grant_type"] == "client_credentials"
    assert second.body == rocketchat.body

    # mTLS: the receiver took the endpoint with our certificate, refused the one without.
    assert received(secure, "/ok/mtls")[0].body == rocketchat.body
    dead = TopicReader(
        kafka.bootstrap, f"{settings.topic_prefix}{Topic.WEBHOOK_DEAD_LETTERS.value}"
    )
    try:
        letters = dead.wait_for(1, timeout_s=60)
    finally:
        dead.close()
    assert [letter["job"]["endpoint_id"] for letter in letters] == ["no-cert"]
    assert letters[0]["attempts"][-1]["status"] is None  # the TLS handshake refused it
    assert secure.at("/ok/no-cert") == []


def test_an_endpoint_is_resolved_at_every_attempt(
    kafka: Broker, worker_settings: Settings, receiver: Receiver
) -> None:
    """A moved URL takes the retry already scheduled; a disabled endpoint's pending job is
    dead-lettered unsent; a template that fails on a body dead-letters it at once (no
    retries), and a replay after the fix renders it again from the original body."""
    settings = worker_settings
    # Retries 20 s apart: time for the operator's changes (a CLI call takes seconds on a busy
    # CI machine) well before the retry is due.
    cli(settings, "add", "moving", "--url", receiver.url("/status/503"), "--triggers=close",
        "--retry-delay-s", "20", "--retry-attempts", "5")  # fmt: skip
    cli(settings, "add", "leaving", "--url", receiver.url("/status/502"), "--triggers=close",
        "--retry-delay-s", "20", "--retry-attempts", "5")  # fmt: skip
    # Fine on the samples (checked by `add`), fails on every real room.
    failing = '{body: {room: (if ._id == "sample-room" then ._id else error("no CRM id") end)}}'
    cli(settings, "add", "shaped", "--url", receiver.url("/ok/shaped"), "--triggers=close",
        "--template", failing)  # fmt: skip
    demo.produce(kafka.bootstrap, settings.topic_prefix, demo.seed_conversation("moved-room"))

    received(receiver, "/status/503")
    received(receiver, "/status/502")
    cli(settings, "disable", "leaving")
    cli(settings, "update", "moving", "--url", receiver.url("/ok/moved"))
    moved = received(receiver, "/ok/moved")[0]
    assert moved.json()["_id"] == "moved-room"

    dead = TopicReader(
        kafka.bootstrap, f"{settings.topic_prefix}{Topic.WEBHOOK_DEAD_LETTERS.value}"
    )
    try:
        letters = {v["job"]["endpoint_id"]: v for v in dead.wait_for(2, timeout_s=60)}
    finally:
        dead.close()
    assert letters["leaving"]["reason"] == "endpoint disabled"
    assert len(letters["leaving"]["attempts"]) == 1  # its one POST, before the change
    assert "no CRM id" in letters["shaped"]["reason"] and letters["shaped"]["attempts"] == []
    assert len(receiver.at("/status/503")) == 1 and len(receiver.at("/status/502")) == 1
    assert receiver.at("/ok/shaped") == []

    cli(settings, "update", "shaped", "--template", "{body: {room: ._id}}")
    replayed = omnihooks_cli(settings, "dlq", "replay", "--endpoint", "shaped", "--yes")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert received(receiver, "/ok/shaped")[0].body == b'{"room":"moved-room"}'


def test_endpoints_test_sends_a_sample_as_a_worker_would(
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    receiver: Receiver,
    report: Callable[[str], None],
) -> None:
    settings = settings_factory()
    refused = omnihooks_cli(settings, "endpoints", "add", "crm", "--url", receiver.url("/bearer"),
                            "--template", "{body: .visitor.name +}")  # fmt: skip
    assert refused.returncode == 2
    assert "template does not compile" in refused.stderr and "line 1, column" in refused.stderr
    cli(settings, "add", "crm", "--workspace", "acme", "--url", receiver.url("/bearer"),
        "--triggers", "close", "--filter", '.type == "LivechatSession"', "--template", NOTE,
        "--oauth2-token-url", receiver.url("/token"), "--oauth2-client-id", "omnihooks",
        "--oauth2-client-secret", "s3cret-client")  # fmt: skip

    dry = omnihooks_cli(settings, "endpoints", "test", "acme/crm", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"PUT {receiver.url('/bearer')}/notes?room=sample-room" in dry.stdout
    assert "(--dry-run: not sent)" in dry.stdout and receiver.at("/bearer/notes") == []

    sent = omnihooks_cli(settings, "endpoints", "test", "acme/crm", "--type", "close")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    report("endpoints test output:\n" + sent.stdout)
    got = received(receiver, "/bearer/notes")[-1]
    assert got.method == "PUT" and got.query == "room=sample-room"
    token = got.headers["Authorization"].removeprefix("Bearer ")
    assert token in receiver.tokens.issued and token not in sent.stdout  # masked
    assert "answer: HTTP 200" in sent.stdout
    assert got.json()["properties"]["hs_note_body"] == "Chat with James: 4 messages"

    skipped = omnihooks_cli(settings, "endpoints", "test", "acme/crm", "--type", "message")
    assert skipped.returncode == 0 and "filter: no match" in skipped.stdout


def test_a_failing_token_endpoint_is_a_failed_attempt_with_its_own_reason(
    receiver: Receiver,
) -> None:
    import asyncio

    from streams.delivery.oauth2 import TokenSource
    from streams.delivery.webhook_client import Credentials, WebhookClient
    from streams.settings import load_settings
    from topics.records import OAuth2Client, WebhookJob

    async def attempt(secret: str) -> tuple[str | None, int | None]:
        client = WebhookClient(load_settings())
        tokens = TokenSource(OAuth2Client(receiver.url("/token"), "omnihooks", secret), 5.0)
        job = WebhookJob("d-1", "LivechatSession", "r", receiver.url("/bearer"), {"a": 1}, "t")
        try:
            answer = await client.post(job, credentials=Credentials(tokens=tokens))
        finally:
            await client.close()
        return answer.attempt.error, answer.attempt.status

    error, status = asyncio.run(attempt("wrong-secret"))
    assert status is None and error is not None and error.startswith("oauth2: token endpoint")
    assert "invalid_client" in error
    assert receiver.at("/bearer") == []  # nothing sent without a token
    assert asyncio.run(attempt("s3cret-client")) == (None, 200)
