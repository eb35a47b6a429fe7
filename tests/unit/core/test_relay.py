"""Relay mode's pure core (streams/core/relay.py): which bodies are taken, which endpoints get
them, and stable ids for Rocket.Chat's own retries."""

from __future__ import annotations

import pytest

from streams.core.endpoints import EndpointDirectory
from streams.core.relay import InvalidBody, read_body, relay_jobs
from streams.settings import load_settings
from tests.support.files import SEED
from topics import codec
from topics.records import EndpointRecord

NOW = "2026-11-26T00:00:00.000Z"


def directory(*records: EndpointRecord, **settings: object) -> EndpointDirectory:
    found = (load_settings(**settings)).endpoint_directory()
    for record in records:
        found.apply(record.key(), record.to_json())
    return found


def endpoint(workspace: str, endpoint_id: str, *triggers: str) -> EndpointRecord:
    return EndpointRecord(workspace, endpoint_id, f"http://crm.test/{endpoint_id}", NOW, NOW,
                          triggers=triggers)  # fmt: skip


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"type": "Typing", "_id": "r"}', "unknown type 'Typing'"),
        (b'{"type": "Message"}', "needs its _id"),
        (b'{"type": "LivechatOfflineMessage", "visitor": {}}', "needs its visitor.email"),
    ],
)
def test_bodies_that_are_not_webhooks_are_refused_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidBody, match=reason):
        read_body("default", body)


def test_each_endpoint_gets_the_bodies_its_triggers_want_byte_for_byte() -> None:
    found = directory(
        endpoint("acme", "crm", "close"),
        endpoint("acme", "agents", "agent_message"),
        endpoint("acme", "visitors", "visitor_message"),
        endpoint("globex", "crm", "close", "agent_message"),
    )
    message = (SEED / "message.json").read_bytes()  # the agent's answer (agentId set)
    close = (SEED / "livechat-session.json").read_bytes()
    jobs = relay_jobs(read_body("acme", message), found, NOW)
    assert [job.endpoint_id for job in jobs] == ["agents"]
    [job] = jobs
    assert job.raw_body is not None and job.raw_body.encode() == message
    assert job.room_id == codec.loads(message)["_id"] and job.type == "Message"
    visitor = codec.loads(message)
    del visitor["messages"][0]["agentId"]
    visitor_body = codec.dumps(visitor)
    assert [j.endpoint_id for j in relay_jobs(read_body("acme", visitor_body), found, NOW)] == [
        "visitors"
    ]
    assert [j.endpoint_id for j in relay_jobs(read_body("acme", close), found, NOW)] == ["crm"]
    edit = codec.dumps({**codec.loads(close), "type": "LivechatEdit"})
    assert len(relay_jobs(read_body("acme", edit), found, NOW)) == 3  # every enabled endpoint


def test_the_same_body_makes_the_same_ids_and_the_environment_is_the_default() -> None:
    found = directory(webhook_url="http://crm.test/hook", send_on_close=True)
    close = (SEED / "livechat-session.json").read_bytes()
    first = relay_jobs(read_body("default", close), found, NOW)
    again = relay_jobs(read_body("default", close), found, "2026-11-26T00:00:09.000Z")
    assert [j.delivery_id for j in first] == [j.delivery_id for j in again]
    assert [j.url for j in first] == ["http://crm.test/hook"]
    other_workspace = relay_jobs(read_body("acme", close), found, NOW)
    assert other_workspace == []  # no endpoint there
    offline = b'{"type": "LivechatOfflineMessage", "visitor": {"email": "a@b.c"}, "message": "hi"}'
    assert read_body("default", offline).key == "a@b.c"
