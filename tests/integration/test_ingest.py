"""Relay mode through a real broker, `omnihooks ingest`, a worker and a real receiver, with
httpx standing in for Rocket.Chat: its bodies reach the CRM byte for byte and signed; a
wrong token, a bad body, an oversized body and a stopped broker are refused without losing
anything; the same body posted twice is delivered once."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from streams.core.signing import signing_key, verify
from streams.engine.kafka import KafkaConfig, write_one
from streams.ops.topic_admin import apply_catalogue
from streams.settings import Settings
from tests.conftest import Broker, local_kafka_for_tests
from tests.support.files import SEED
from tests.support.harness import (
    TopicReader,
    WorkerProcess,
    free_port,
    omnihooks_cli,
    pipeline_topics,
    settings_env,
    wait_committed,
)
from tests.support.receiver import Receiver
from topics.catalogue import Topic, load_catalogue
from topics.records import CrmDataRecord

pytestmark = pytest.mark.integration

TOKEN = "rocket-token"
SECRET = "whsec_" + "cmVsYXktc2lnbmluZy1zZWNyZXQtcmVsYXk="
OWN_BROKER_PORT = 19294  # its own broker (controller on 19295): not the suite's, not the faults'


class Ingest:
    """`omnihooks ingest` in its own process."""

    def __init__(self, settings: Settings, log_path: Path, wait_ready: bool = True) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/rocketchat"
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams.ops.cli", "ingest", "--host", "127.0.0.1",
                 "--port", str(self.port)],
                env=settings_env(settings), stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        if wait_ready:
            self.wait("/healthz")

    def wait(self, page: str, timeout_s: float = 60) -> None:
        """Until `page` answers 200 (/healthz: ready; /livez: the process answers)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}{page}", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"ingest {page} never answered 200:\n{self.log_path.read_text()}")

    def post(self, workspace: str, body: bytes, token: str = TOKEN) -> httpx.Response:
        headers = {"Content-Type": "application/json", "X-RocketChat-Livechat-Token": token}
        return httpx.post(f"{self.url}/{workspace}", content=body, headers=headers, timeout=30)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture
def relay(
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
    tmp_path: Path,
) -> Iterator[tuple[Settings, Ingest]]:
    # The environment's endpoint: every trigger, as a Rocket.Chat administrator would tick
    # the same boxes on both sides.
    settings = settings_factory(
        ingest_token=TOKEN, webhook_url=receiver.url("/ok/crm"), signing_secret=SECRET,
        secret_token="crm-token", send_on_close=True, send_on_agent_message=True,
        send_on_visitor_message=True, send_on_start=True,
    )  # fmt: skip
    start_worker(settings, "all").wait_for_log("Worker ready", timeout_s=90)
    ingest = Ingest(settings, tmp_path / "ingest.log")
    yield settings, ingest
    ingest.stop()


def test_the_seeds_bodies_reach_the_crm_byte_for_byte_signed_and_only_once(
    relay: tuple[Settings, Ingest], receiver: Receiver
) -> None:
    settings, ingest = relay
    bodies = [(SEED / name).read_bytes() for name in ("message.json", "livechat-session.json")]
    for body in bodies:
        answer = ingest.post("default", body)
        assert answer.status_code == 200, answer.text
    assert ingest.post("default", bodies[0]).status_code == 200  # Rocket.Chat's own retry
    receiver.wait_for("/ok/crm", 2, timeout_s=90)
    # Committed: the worker is done with all three bodies; a third POST would be the retry
    # delivered twice.
    wait_committed(settings.kafka_bootstrap_servers, settings.app_id, pipeline_topics(settings))
    got = receiver.at("/ok/crm")
    assert sorted(r.body for r in got) == sorted(bodies)  # byte for byte, once each
    for request in got:
        headers = request.headers
        assert headers["X-RocketChat-Livechat-Token"] == "crm-token"
        stamp = int(headers["webhook-timestamp"])
        assert verify(signing_key(SECRET), headers["webhook-id"], stamp, request.body,
                      headers["webhook-signature"])  # fmt: skip
    # Rocket.Chat keeps what answers its webhook as crmData: the CRM's last answer for the
    # room (the receiver answered empty, so empty: the next test's /crm path answers JSON).


def test_refused_posts_write_nothing(
    relay: tuple[Settings, Ingest],
    applied_topics: dict[Topic, str],
    read_topic: Callable[[str], TopicReader],
) -> None:
    _, ingest = relay
    good = (SEED / "message.json").read_bytes()
    assert ingest.post("default", good, token="wrong").status_code == 401
    assert ingest.post("default", good, token="").status_code == 401
    assert ingest.post("default", b"{not json").status_code == 400
    assert ingest.post("default", b'{"type": "Typing", "_id": "r"}').status_code == 400
    huge = b'{"type": "Message", "_id": "r", "pad": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    assert ingest.post("default", huge).status_code == 413
    assert ingest.post("not a workspace!", good).status_code == 404
    # A workspace with no endpoint: a typo would be stored and never delivered.
    typo = ingest.post("Default", good)
    assert typo.status_code == 404 and "'Default'" in typo.text
    assert read_topic(applied_topics[Topic.ROCKETCHAT_WEBHOOKS]).settle(2) == []


def test_a_workspace_is_known_once_an_endpoint_is_added_to_it(
    relay: tuple[Settings, Ingest],
    applied_topics: dict[Topic, str],
    read_topic: Callable[[str], TopicReader],
    receiver: Receiver,
) -> None:
    settings, ingest = relay
    good = (SEED / "message.json").read_bytes()
    assert ingest.post("acme", good).status_code == 404
    added = omnihooks_cli(settings, "endpoints", "add", "crm", "--workspace", "acme",
                          "--url", receiver.url("/ok/acme"), "--triggers", "all")  # fmt: skip
    assert added.returncode == 0, added.stderr
    deadline = time.monotonic() + 30
    while (answer := ingest.post("acme", good)).status_code == 404:
        assert time.monotonic() < deadline, "ingest never learned of workspace acme"
        time.sleep(0.2)
    assert answer.status_code == 200, answer.text
    assert receiver.wait_for("/ok/acme", 1, timeout_s=90)[0].body == good
    removed = omnihooks_cli(settings, "endpoints", "remove", "crm", "--workspace", "acme")
    assert removed.returncode == 0, removed.stderr
    deadline = time.monotonic() + 30
    while ingest.post("acme", good).status_code != 404:
        assert time.monotonic() < deadline, "ingest still takes workspace acme"
        time.sleep(0.2)


def test_the_crms_answer_comes_back_as_the_next_ingest_answer(
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    settings = settings_factory(ingest_token=TOKEN, webhook_url=receiver.url("/crm"),
                                send_on_agent_message=True, send_on_visitor_message=True)  # fmt: skip
    start_worker(settings, "all").wait_for_log("Worker ready", timeout_s=90)
    ingest = Ingest(settings, tmp_path / "ingest.log")
    try:
        first = (SEED / "message.json").read_bytes()
        assert ingest.post("default", first).text == ""  # no answer yet
        receiver.wait_for("/crm", 1, timeout_s=90)
        second = first.replace(b"How can I help you today?", b"Anything else?")
        deadline = time.monotonic() + 30
        while True:  # the answer reaches crm-data, then the ingest, within moments
            answer = ingest.post("default", second)
            if answer.text or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert answer.json() == {"contactId": "crm-42"}  # the receiver's /crm answer
    finally:
        ingest.stop()


@pytest.mark.xdist_group("heavy")  # starts and stops a broker of its own
def test_a_stopped_broker_gets_503_and_the_retried_body_arrives_once(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    broker = local_kafka_for_tests(OWN_BROKER_PORT)
    broker.up(timeout_s=120, fresh=True)
    ingest = None
    try:
        settings = settings_factory(
            kafka_bootstrap_servers=broker.bootstrap, ingest_token=TOKEN, ingest_timeout_s=3,
            webhook_url=receiver.url("/ok/own"), send_on_close=True,
        )  # fmt: skip
        apply_catalogue(broker.bootstrap, load_catalogue(settings.partitions),
                        settings.topic_prefix)  # fmt: skip
        ingest = Ingest(settings, tmp_path / "ingest.log")
        body = (SEED / "livechat-session.json").read_bytes()
        room = "Tc5SyBZHovD4k8BXv"  # the body's room, whose CRM answered before
        answer_before = CrmDataRecord(room, '{"contactId": "crm-7"}', "d-0", "2024-05-01T10:00:00Z")
        write_one(KafkaConfig(broker.bootstrap), f"{settings.topic_prefix}crm-data",
                  room.encode(), answer_before.to_json())  # fmt: skip
        broker.down()
        assert ingest.post("default", body).status_code == 503
        # One started during the outage: not ready until Kafka is back, then as good.
        late = Ingest(settings, tmp_path / "late-ingest.log", wait_ready=False)
        late.wait("/livez")
        assert httpx.get(f"http://127.0.0.1:{late.port}/healthz", timeout=5).status_code == 503
        broker.up(timeout_s=120)  # the same data: a restart
        deadline = time.monotonic() + 60
        while (answer := ingest.post("default", body)).status_code != 200:
            assert time.monotonic() < deadline, answer.status_code  # Rocket.Chat retrying
            time.sleep(1)
        assert answer.text == '{"contactId": "crm-7"}'
        late.wait("/healthz", timeout_s=90)
        late_answer = late.post("default", body)  # the same body again: delivered once
        late.stop()
        assert (late_answer.status_code, late_answer.text) == (200, '{"contactId": "crm-7"}')
        worker = start_worker(settings, "all")
        receiver.wait_for("/ok/own", 1, timeout_s=120)
        time.sleep(2)
        assert [r.body for r in receiver.at("/ok/own")] == [body]
        worker.kill()  # before its broker goes: a SIGTERM then would wait a minute
    finally:
        if ingest is not None:
            ingest.stop()
        broker.down()


def test_own_broker_port_is_not_the_suites(kafka: Broker) -> None:
    assert str(OWN_BROKER_PORT) not in kafka.bootstrap
