"""A secured broker (SASL_SSL with SCRAM, mutual TLS, ACLs required): every surface works with
its own least-privileged principal, a refused login or certificate ends a command or a worker
with its cause, and a missing ACL is named, with nothing lost once it is granted."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from streams.dev import demo
from streams.dev.certificates import CertificateAuthority
from streams.dev.local_kafka import LocalKafka
from streams.engine.kafka import Writer, read_all
from streams.ops.acl_admin import revoke
from streams.ops.topic_admin import apply_catalogue, changelogs
from streams.settings import Settings
from tests.integration.test_console import ConsoleProcess
from tests.integration.test_delivery import make_job
from tests.integration.test_ingest import TOKEN, Ingest
from tests.support.files import SEED
from tests.support.harness import WorkerProcess, free_port, omnihooks_cli
from tests.support.receiver import Receiver
from tests.support.secured import SECURED_PORT, Mechanism, SecuredCluster, wait_for_acls
from topics.catalogue import Topic, load_catalogue
from topics.records import Attempt, DeadLetter, IngestedRecord
from topics.roles import Acl

# One secured broker for these tests, in one test process.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("secured")]

CLOSE_AND_MESSAGES = ["LivechatSession", "Message", "Message"]


@pytest.fixture(scope="module")
def secured() -> Iterator[SecuredCluster]:
    broker = LocalKafka.configured(kafka_port=SECURED_PORT, kafka_secured=True)
    try:
        broker.up(timeout_s=120, fresh=True)
    except Exception as exc:
        pytest.fail(f"the secured Kafka broker could not start: {exc}", pytrace=False)
    yield SecuredCluster(broker)
    broker.down()


@pytest.fixture
def as_role(
    secured: SecuredCluster, settings_factory: Callable[..., Settings]
) -> Callable[..., Settings]:
    """Settings for a role's principal (its rights granted for this test's topics)."""

    def settings(role: str, mechanism: Mechanism = "scram", **overrides: Any) -> Settings:
        base = settings_factory(**overrides)
        secured.grant_role(role, mechanism, base.topic_prefix, base.app_id)
        return settings_factory(**secured.connection(role, mechanism), **overrides)

    return settings


def admin_applies_topics(secured: SecuredCluster, settings: Settings) -> None:
    """`omnihooks topics apply`, as the admin role's principal with only its own rights."""
    catalogue = load_catalogue(settings.partitions)
    assert apply_catalogue(secured.admin(), catalogue, settings.topic_prefix).created
    extra = changelogs(settings, catalogue, ["sessions", "delivery"])
    apply_catalogue(secured.admin(), catalogue, settings.topic_prefix, extra=extra)


def no_secret_in(output: str, secured: SecuredCluster) -> None:
    for password in secured.broker.security.users().values():
        assert password not in output


@pytest.mark.parametrize("mechanism", ["scram", "mtls"])
def test_every_surface_works_with_only_its_own_rights(
    secured: SecuredCluster,
    as_role: Callable[..., Settings],
    receiver: Receiver,
    tmp_path: Path,
    mechanism: Mechanism,
) -> None:
    webhooks = {"send_on_close": True, "send_on_visitor_message": True, "compat": "rocketchat-7"}
    admin = as_role("admin", mechanism)
    applied = omnihooks_cli(admin, "topics", "apply", "--role", "sessions", "--role", "delivery")
    assert applied.returncode == 0, applied.stderr
    assert "created" in applied.stdout and "omnihooks-" in applied.stdout  # the changelogs too

    endpoints = as_role("endpoints", mechanism)
    added = omnihooks_cli(endpoints, "endpoints", "add", "crm", "--url", receiver.url("/ok/crm"),
                          "--triggers", "close,visitor_message")  # fmt: skip
    assert added.returncode == 0, added.stderr
    listed = omnihooks_cli(endpoints, "endpoints", "list")
    assert listed.returncode == 0 and "default/crm" in listed.stdout
    failing = omnihooks_cli(endpoints, "endpoints", "add", "down", "--url",
                            receiver.url("/status/500"), "--triggers", "close",
                            "--retry-attempts", "0")  # fmt: skip
    assert failing.returncode == 0, failing.stderr

    workers = [
        WorkerProcess(as_role("worker-sessions", mechanism, **webhooks), "sessions",
                      tmp_path / "sessions.log").start(),
        WorkerProcess(as_role("worker-delivery", mechanism, **webhooks), "delivery",
                      tmp_path / "delivery.log").start(),
    ]  # fmt: skip
    try:
        for worker in workers:
            worker.wait_for_log("Worker ready", timeout_s=90)
        demo.produce(secured.admin(), admin.topic_prefix, demo.seed_conversation("secure-1"))
        got = receiver.wait_for("/ok/crm", 3, timeout_s=90)
        assert sorted(r.json()["type"] for r in got) == CLOSE_AND_MESSAGES

        # The failing endpoint's close is a dead letter: listed and replayed by the dlq role.
        dlq = as_role("dlq", mechanism)
        letters = _wait_for_dead_letter(dlq)
        assert letters[0]["room"] == "secure-1"
        replayed = omnihooks_cli(dlq, "dlq", "replay", "--url", receiver.url("/ok/replayed"),
                                 "--yes")  # fmt: skip
        assert replayed.returncode == 0, replayed.stderr
        [again] = receiver.wait_for("/ok/replayed", 1, timeout_s=90)
        assert again.json()["type"] == "LivechatSession"

        # Relay mode's ingest writes with its own principal, 200 only once it is written.
        ingest = Ingest(as_role("ingest", mechanism, ingest_token=TOKEN), tmp_path / "ingest.log")
        try:
            body = (SEED / "message.json").read_bytes()
            assert ingest.post("default", body).status_code == 200
            stored = read_all(secured.admin(), f"{admin.topic_prefix}rocketchat-webhooks")
            assert [IngestedRecord.from_json(m.value()).body for m in stored] == [body.decode()]
        finally:
            ingest.stop()

        # The console reads dead letters and rejected input with the read-only role.
        console = ConsoleProcess(as_role("console", mechanism), "console",
                                 tmp_path / "console.log", port=free_port()).start()  # fmt: skip
        try:
            _wait_for_page(f"{console.url}/dead-letters", "secure-1")
            assert httpx.get(f"{console.url}/rejected", timeout=30).status_code == 200
        finally:
            console.stop()
        for process in (*workers, console):
            no_secret_in(process.log(), secured)
    finally:
        for worker in workers:
            worker.stop()


def _wait_for_dead_letter(settings: Settings) -> list[Any]:
    from topics import codec

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        listed = omnihooks_cli(settings, "dlq", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        rows = [codec.loads(line) for line in listed.stdout.splitlines()]
        if rows:
            return rows
        time.sleep(1)
    raise AssertionError("no dead letter")


def _wait_for_page(url: str, text: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            page = httpx.get(url, timeout=30)
            if page.status_code == 200 and text in page.text:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} never showed {text!r}")


def refused(secured: SecuredCluster, case: str, tmp_path: Path) -> dict[str, Any]:
    """A principal's connection with one thing wrong."""
    connection = secured.connection("dlq")
    if case == "wrong password":
        connection["kafka_sasl_password"] = "not-the-password-" + "x" * 8
    elif case == "unknown CA":
        connection["kafka_ssl_ca_location"] = CertificateAuthority.create(
            tmp_path, "other"
        ).certificate
    else:  # the broker's certificate names localhost, not 127.0.0.1
        connection["kafka_bootstrap_servers"] = f"127.0.0.1:{SECURED_PORT}"
    return connection


CAUSES = {
    "wrong password": "refused the login of User:dlq",
    "unknown CA": "is not signed by a CA in",
    "certificate for another host": "is not for that host",
}


@pytest.mark.parametrize("case", list(CAUSES))
def test_a_refused_login_or_certificate_ends_commands_and_workers_with_its_cause(
    secured: SecuredCluster,
    settings_factory: Callable[..., Settings],
    tmp_path: Path,
    case: str,
) -> None:
    settings = settings_factory(**refused(secured, case, tmp_path))
    started = time.monotonic()
    listed = omnihooks_cli(settings, "dlq", "list", timeout_s=60)
    assert time.monotonic() - started < 30
    assert listed.returncode == 1
    assert CAUSES[case] in listed.stderr and "KafkaAccessError" in listed.stderr, listed.stderr
    assert settings.kafka_sasl_password.get_secret_value() not in listed.stdout + listed.stderr

    started = time.monotonic()
    worker = WorkerProcess(settings, "delivery", tmp_path / "worker.log", make_changelogs=False)
    worker.start()
    assert worker.process is not None
    assert worker.process.wait(30) == 1
    assert time.monotonic() - started < 30
    assert CAUSES[case] in worker.log()
    assert settings.kafka_sasl_password.get_secret_value() not in worker.log()


def test_a_missing_acl_is_named_and_the_conversation_arrives_once_it_is_granted(
    secured: SecuredCluster,
    as_role: Callable[..., Settings],
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    webhooks = {"webhook_url": receiver.url("/ok/crm"), "send_on_close": True}
    admin = as_role("admin")
    admin_applies_topics(secured, admin)
    sessions = as_role("worker-sessions", **webhooks)
    delivery = as_role("worker-delivery", **webhooks)
    # The delivery principal without the right to read its consumer group
    group = Acl("group", f"{delivery.app_id}-delivery", "literal", "Read")
    assert revoke(secured.admin(), "User:worker-delivery", [group]) == 1
    time.sleep(1)  # ACL changes reach the authorizer through the metadata log

    worker = WorkerProcess(sessions, "sessions", tmp_path / "sessions.log").start()
    try:
        worker.wait_for_log("Worker ready", timeout_s=90)
        demo.produce(secured.admin(), admin.topic_prefix, demo.seed_conversation("acl-1"))
        refused_worker = WorkerProcess(delivery, "delivery", tmp_path / "refused.log").start()
        assert refused_worker.process is not None and refused_worker.process.wait(30) == 1
        assert (f"User:worker-delivery is not authorized to read group {delivery.app_id}-delivery"
                in refused_worker.log()), refused_worker.tail()  # fmt: skip

        from streams.ops.acl_admin import grant

        grant(secured.admin(), "User:worker-delivery", [group])
        wait_for_acls(secured.admin(), "User:worker-delivery", 11)
        delivering = WorkerProcess(delivery, "delivery", tmp_path / "delivery.log").start()
        try:
            [close] = receiver.wait_for("/ok/crm", 1, timeout_s=90)
            assert close.json()["_id"] == "acl-1" and close.json()["type"] == "LivechatSession"
        finally:
            delivering.stop()
    finally:
        worker.stop()


def test_dlq_replay_refused_by_a_missing_acl_names_it_and_reports_failure(
    secured: SecuredCluster, as_role: Callable[..., Settings]
) -> None:
    admin = as_role("admin")
    admin_applies_topics(secured, admin)
    job = make_job("http://127.0.0.1:9/", 0, room="room-acl")
    letter = DeadLetter(job, (Attempt("2023-02-02T10:00:01.000Z", 500, None, 5),),
                        "2023-02-02T10:00:02.000Z", "attempts exhausted")  # fmt: skip
    writer = Writer(secured.admin())
    writer.write(f"{admin.topic_prefix}{Topic.WEBHOOK_DEAD_LETTERS.value}", letter.key(),
                 letter.to_json())  # fmt: skip
    writer.flush()
    dlq = as_role("dlq")
    jobs = Acl("topic", f"{dlq.topic_prefix}webhook-jobs", "literal", "Write")
    assert revoke(secured.admin(), "User:dlq", [jobs]) == 1
    time.sleep(1)
    replayed = omnihooks_cli(dlq, "dlq", "replay", "--yes")
    assert replayed.returncode == 1
    assert f"User:dlq is not authorized to write topic {dlq.topic_prefix}webhook-jobs" in (
        replayed.stderr
    ), replayed.stderr
