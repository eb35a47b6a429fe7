"""Endpoints as data through the real broker, a worker and a real receiver: two workspaces of
two endpoints each get exactly their webhooks; endpoints added, moved and disabled while
conversations flow take effect without a restart and lose nothing; a rotated secret signs
with the old and the new one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from streams.core.signing import signing_key, verify
from streams.dev import demo
from streams.engine.kafka import KafkaConfig, read_all
from streams.settings import Settings
from tests.conftest import Broker
from tests.support.harness import (
    TopicReader,
    WorkerProcess,
    omnihooks_cli,
    pipeline_topics,
    wait_committed,
    wait_until,
)
from tests.support.receiver import Received, Receiver
from topics.catalogue import Topic

pytestmark = pytest.mark.integration

SECRET_OLD = "whsec_" + "b2xkLXNlY3JldC1vbGQtc2VjcmV0LW9sZA=="
SECRET_NEW = "whsec_" + "bmV3LXNlY3JldC1uZXctc2VjcmV0LW5ldw=="


def cli(settings: Settings, *args: str) -> str:
    done = omnihooks_cli(settings, "endpoints", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def conversation(room: str, workspace: str | None) -> list[demo.InputRecord]:
    records = demo.seed_conversation(room, run=room)
    if workspace is not None:
        for record in records:
            record.value["workspace"] = workspace
    return records


def types_at(receiver: Receiver, path: str, room: str) -> list[str]:
    """The payload types the receiver accepted at `path` for `room`, in order of arrival."""
    return [r.json()["type"] for r in receiver.at(path) if r.status == 200 and _room(r) == room]


def _room(request: Received) -> Any:
    body = request.json()
    return body.get("_id")


def wait_types(receiver: Receiver, path: str, room: str, want: list[str]) -> None:
    wait_until(lambda: sorted(types_at(receiver, path, room)) == sorted(want), 90,
               lambda: f"{path} {room}: {types_at(receiver, path, room)} != {want}")  # fmt: skip


@pytest.fixture
def pipeline(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
) -> tuple[Settings, WorkerProcess]:
    # No OMNIHOOKS_WEBHOOK_URL: every endpoint comes from the endpoints topic.
    # 30 retries 1 s apart: time enough to move an endpoint before its jobs run out
    settings = settings_factory(retry_attempts=30, retry_delay_s=1)
    worker = start_worker(settings, "all")
    worker.wait_for_log("Worker ready", timeout_s=90)
    return settings, worker


def test_two_workspaces_of_two_endpoints_get_exactly_their_webhooks(
    kafka: Broker, pipeline: tuple[Settings, WorkerProcess], receiver: Receiver
) -> None:
    settings, worker = pipeline
    cli(settings, "add", "crm", "--workspace", "acme", "--url", receiver.url("/ok/acme-crm"),
        "--triggers", "start,close")  # fmt: skip
    cli(settings, "add", "dwh", "--workspace", "acme", "--url", receiver.url("/ok/acme-dwh"),
        "--triggers", "visitor_message,agent_message", "--compat", "rocketchat-7")  # fmt: skip
    cli(settings, "add", "crm", "--workspace", "globex", "--url", receiver.url("/ok/globex-crm"),
        "--triggers", "chat_taken", "--token", "globex-token")  # fmt: skip
    cli(settings, "add", "dwh", "--workspace", "globex", "--url", receiver.url("/ok/globex-dwh"),
        "--triggers", "close", "--navigation-history")  # fmt: skip
    worker.wait_for_log("endpoint globex/dwh enabled", timeout_s=30)
    listed = cli(settings, "list")
    assert "acme/crm" in listed and "globex/dwh" in listed
    demo.produce(kafka.bootstrap, settings.topic_prefix, conversation("room-a", "acme"), 0.05)
    demo.produce(kafka.bootstrap, settings.topic_prefix, conversation("room-g", "globex"), 0.05)
    wait_types(receiver, "/ok/acme-crm", "room-a", ["LivechatSessionStart", "LivechatSession"])
    wait_types(receiver, "/ok/acme-dwh", "room-a", ["Message", "Message", "Message"])
    wait_types(receiver, "/ok/globex-crm", "room-g", ["LivechatSessionTaken"])
    wait_types(receiver, "/ok/globex-dwh", "room-g", ["LivechatSession"])
    # Committed: the worker is done with every record, so nothing more is coming.
    wait_committed(kafka.bootstrap, settings.app_id, pipeline_topics(settings))
    for path in ("/ok/acme-crm", "/ok/acme-dwh", "/ok/globex-crm", "/ok/globex-dwh"):
        other = "room-g" if "acme" in path else "room-a"
        assert types_at(receiver, path, other) == [], f"{path} got the other workspace's"
    [taken] = receiver.at("/ok/globex-crm")
    assert taken.headers["X-RocketChat-Livechat-Token"] == "globex-token"
    assert "X-RocketChat-Livechat-Token" not in receiver.at("/ok/acme-crm")[0].headers
    numbers = [int(r.headers["webhook-sequence"]) for r in receiver.at("/ok/acme-dwh")]
    assert sorted(numbers) == [1, 2, 3]  # numbered per endpoint


def test_endpoints_added_moved_and_disabled_live_lose_nothing(
    kafka: Broker,
    pipeline: tuple[Settings, WorkerProcess],
    receiver: Receiver,
    applied_topics: dict[Topic, str],
    read_topic: Callable[[str], TopicReader],
) -> None:
    settings, worker = pipeline
    closes = ["LivechatSession"]
    # Down at first: its jobs wait in the retries topic when the operator moves it.
    cli(settings, "add", "crm", "--url", receiver.url("/status/503"), "--triggers", "close")
    worker.wait_for_log("endpoint default/crm enabled", timeout_s=30)
    demo.produce(kafka.bootstrap, settings.topic_prefix, conversation("room-1", None), 0.05)
    receiver.wait_for("/status/503", 1, timeout_s=60)
    cli(settings, "update", "crm", "--url", receiver.url("/ok/moved"))
    wait_types(receiver, "/ok/moved", "room-1", closes)  # the pending retry, at the new URL
    cli(settings, "add", "second", "--url", receiver.url("/ok/second"), "--triggers", "close")
    worker.wait_for_log("endpoint default/second enabled", timeout_s=30)
    demo.produce(kafka.bootstrap, settings.topic_prefix, conversation("room-2", None), 0.05)
    wait_types(receiver, "/ok/moved", "room-2", closes)
    wait_types(receiver, "/ok/second", "room-2", closes)
    cli(settings, "disable", "crm")
    worker.wait_for_log("endpoint default/crm disabled", timeout_s=30)
    demo.produce(kafka.bootstrap, settings.topic_prefix, conversation("room-3", None), 0.05)
    wait_types(receiver, "/ok/second", "room-3", closes)
    wait_committed(kafka.bootstrap, settings.app_id, pipeline_topics(settings))
    assert types_at(receiver, "/ok/moved", "room-3") == []  # disabled: no new webhooks
    assert read_all(KafkaConfig(kafka.bootstrap), applied_topics[Topic.WEBHOOK_DEAD_LETTERS]) == []


def test_a_rotated_secret_signs_with_the_old_and_the_new_one(
    kafka: Broker, pipeline: tuple[Settings, WorkerProcess], receiver: Receiver
) -> None:
    settings, worker = pipeline
    cli(settings, "add", "crm", "--url", receiver.url("/ok/signed"), "--triggers", "close",
        "--secret", SECRET_OLD)  # fmt: skip
    cli(settings, "rotate-secret", "crm", "--secret", SECRET_NEW, "--grace", "1h")
    # added, then rotated
    wait_until(lambda: worker.log().count("endpoint default/crm enabled") >= 2, 30, worker.tail)
    shown = cli(settings, "show", "crm")
    assert SECRET_OLD not in shown and SECRET_NEW not in shown  # masked
    demo.produce(kafka.bootstrap, settings.topic_prefix, conversation("room-s", None), 0.05)
    [request] = receiver.wait_for("/ok/signed", 1, timeout_s=90)
    headers = request.headers
    signature, stamp = headers["webhook-signature"], int(headers["webhook-timestamp"])
    assert len(signature.split()) == 2
    for secret in (SECRET_OLD, SECRET_NEW):  # a receiver on either secret verifies
        assert verify(signing_key(secret), headers["webhook-id"], stamp, request.body, signature)
