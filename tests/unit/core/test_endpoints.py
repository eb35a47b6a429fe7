"""Endpoints as data (streams/core/endpoints.py): which endpoints get which webhooks, fan-out in
the session processor, per-endpoint numbering and ids, secret rotation, bad input."""

from __future__ import annotations

from typing import Any

import pytest
from msgspec.structs import replace

from streams.core.endpoints import (
    EndpointError,
    rotate,
    signing_secrets,
    validate,
)
from streams.core.leads import compile_lead_patterns
from streams.core.sessions import SessionProcessor
from streams.core.signing import signing_key, verify
from streams.delivery.webhook_client import Credentials, WebhookClient
from streams.dev import demo
from streams.ops.cli import main
from streams.settings import load_settings
from tests.support.memory_store import MemoryStore
from tests.support.sessions import processor_for
from tests.unit.core.test_sessions import Clock, Feed
from topics.records import EndpointRecord, SigningSecret, WebhookJob

NOW = "2026-11-26T00:00:00.000Z"


def endpoint(workspace: str, endpoint_id: str, *triggers: str, **extra: Any) -> EndpointRecord:
    return EndpointRecord(workspace, endpoint_id, f"http://crm.test/{workspace}/{endpoint_id}",
                          NOW, NOW, triggers=triggers, **extra)  # fmt: skip


def processor_with(*endpoints: EndpointRecord, **settings: Any) -> SessionProcessor:
    values = load_settings(**settings)
    directory = values.endpoint_directory()
    for record in endpoints:
        directory.apply(record.key(), record.to_json())
    leads = compile_lead_patterns(values.lead_email_regex, values.lead_phone_regex)
    return processor_for(values, MemoryStore(), leads, Clock(), directory)


def conversation(room: str, workspace: str | None) -> list[demo.InputRecord]:
    records = demo.seed_conversation(room, run=room)
    for record in records:
        if workspace is not None:
            record.value["workspace"] = workspace
    return records


def by_endpoint(jobs: list[WebhookJob]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for job in jobs:
        out.setdefault(f"{job.workspace}/{job.endpoint_id}", []).append(job.type)
    return out


def test_two_workspaces_with_two_endpoints_each_get_exactly_their_webhooks() -> None:
    processor = processor_with(
        endpoint("acme", "crm", "start", "close"),
        endpoint("acme", "warehouse", "agent_message", "visitor_message", compat="rocketchat-7"),
        endpoint("globex", "crm", "chat_taken"),
        endpoint("globex", "off", "close", enabled=False),
    )
    feed = Feed(processor)
    jobs = feed.all(conversation("room-a", "acme")) + feed.all(conversation("room-g", "globex"))
    assert by_endpoint(jobs) == {
        "acme/crm": ["LivechatSessionStart", "LivechatSession"],
        # rocketchat-7: both messages of each side, no closing-comment Message
        "acme/warehouse": ["Message", "Message", "Message"],
        "globex/crm": ["LivechatSessionTaken"],
    }
    assert all(job.url.startswith(f"http://crm.test/{job.workspace}/") for job in jobs)
    # numbered per endpoint: each receiver sees 1, 2, 3, ...
    for name in ("acme/crm", "acme/warehouse"):
        numbers = [j.sequence for j in jobs if f"{j.workspace}/{j.endpoint_id}" == name]
        assert numbers == list(range(1, len(numbers) + 1))
    assert len({job.delivery_id for job in jobs}) == len(jobs)


def test_the_environment_is_the_default_workspaces_default_endpoint_with_its_old_ids() -> None:
    env_only = processor_with(webhook_url="http://crm.test/hook", send_on_close=True,
                              send_on_agent_message=True)  # fmt: skip
    jobs = Feed(env_only).all(demo.seed_conversation(run="same"))
    assert [j.endpoint_id for j in jobs] == ["default"] * 3
    assert {j.url for j in jobs} == {"http://crm.test/hook"}
    # a topic endpoint beside it in the default workspace gets its own ids
    both = processor_with(endpoint("default", "second", "close"), webhook_url="http://crm.test/hook",
                          send_on_close=True, send_on_agent_message=True)  # fmt: skip
    again = Feed(both).all(demo.seed_conversation(run="same"))
    assert [j.delivery_id for j in again if j.endpoint_id == "default"] == [
        j.delivery_id for j in jobs
    ]
    [second] = [j for j in again if j.endpoint_id == "second"]
    assert second.delivery_id not in {j.delivery_id for j in jobs}
    # an endpoint removed (tombstone) or disabled gets no new jobs
    directory = both.directory
    directory.apply(b"default/second", None)
    assert directory.wanting(None, "close")[0].id == "default"


def test_one_body_per_variant_and_the_transcript_read_once() -> None:
    processor = processor_with(
        endpoint("acme", "a", "close"), endpoint("acme", "b", "close"),
        endpoint("acme", "nav", "close", navigation_history=True),
    )  # fmt: skip
    jobs = Feed(processor).all(conversation("room-1", "acme"))
    a, b, nav = jobs
    assert a.body is b.body  # same profile, same navigation option: built once
    assert nav.body is not a.body and nav.body == a.body  # no page visit in this chat


def test_validation_names_what_is_wrong() -> None:
    good = endpoint("acme", "crm", "start")
    assert validate(replace(good, triggers=("close", "start"))).triggers == ("start", "close")
    for bad, words in (
        (replace(good, url="ftp://crm.test/"), "http:// or https://"),
        (replace(good, triggers=("start", "typing")), "unknown trigger(s) typing"),
        (replace(good, id="no spaces"), "endpoint id"),
        (replace(good, compat="rocketchat-5"), "compat"),
        (replace(good, concurrency=0), "concurrency"),
        (replace(good, url="http://crm.test:99999/"), "port"),
        (replace(good, retry_delay_s=float("nan")), "retry delay"),
        (replace(good, secrets=(SigningSecret("whsec_not*base64", NOW),)), "base64"),
    ):
        with pytest.raises(EndpointError, match=words.replace("(", r"\(").replace(")", r"\)")):
            validate(bad)


def test_rotation_signs_with_both_secrets_through_the_grace_period_then_the_new_one() -> None:
    old = replace(endpoint("acme", "crm"), secrets=(SigningSecret("whsec_" + "a" * 32, NOW),))
    rotated = rotate(old, "whsec_" + "b" * 32, NOW, "2026-11-27T00:00:00.000Z")
    during, after = 1_795_700_000.0, 1_795_800_000.0  # within the grace, and after it
    assert signing_secrets(rotated, during) == ["whsec_" + "b" * 32, "whsec_" + "a" * 32]
    assert signing_secrets(rotated, after) == ["whsec_" + "b" * 32]
    client = WebhookClient(load_settings())
    job = WebhookJob("d-1", "Message", "r", "http://x.test/", {}, NOW)
    body = b"{}"
    headers = client.headers(job, body, 1, Credentials.of("tok", signing_secrets(rotated, during)))
    signature = headers["webhook-signature"]
    assert len(signature.split()) == 2 and headers["X-RocketChat-Livechat-Token"] == "tok"
    for secret in ("whsec_" + "a" * 32, "whsec_" + "b" * 32):
        assert verify(signing_key(secret), "d-1", 1, body, signature)


@pytest.mark.parametrize(
    "argv",
    [
        ["endpoints", "add", "crm", "--url", "ftp://crm.test/"],
        ["endpoints", "add", "crm", "--url", "http://crm.test/", "--triggers", "start,typing"],
        ["endpoints", "add", "crm"],  # no --url
        ["endpoints", "update", "crm", "--triggers", "typing"],
        ["endpoints", "add", "bad id", "--url", "http://crm.test/"],
        ["endpoints", "rotate-secret", "crm", "--grace", "soon"],
    ],
)
def test_bad_endpoint_input_is_exit_2_before_touching_kafka(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # nothing listens there
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("omnihooks: ")


def test_a_removed_or_disabled_endpoints_pending_jobs_go_nowhere() -> None:
    from streams.delivery.targets import Targets

    settings = load_settings(webhook_url="http://crm.test/hook", secret_token="env-token")
    found = settings.endpoint_directory()
    crm = replace(endpoint("acme", "crm", "close"), token="acme-token")
    found.apply(crm.key(), crm.to_json())
    job = WebhookJob("d-1", "LivechatSession", "r", crm.url, {}, NOW, workspace="acme",
                     endpoint_id="crm")  # fmt: skip
    targets = Targets(settings, found)
    assert targets.of(job).credentials == Credentials("acme-token", (), None)
    assert targets.of(job).gone == ""
    found.apply(crm.key(), replace(crm, enabled=False).to_json())  # disabled while pending
    assert targets.of(job).gone == "endpoint disabled"
    found.apply(crm.key(), None)  # removed while its jobs are pending
    removed = targets.of(job)
    assert removed.gone == "endpoint removed"
    assert removed.credentials == Credentials()  # never another endpoint's (env-token)
