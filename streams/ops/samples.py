"""Sample webhooks for an endpoint, made by the pipeline's own code: the seed conversation
(started, taken, three messages, closed) run through the session core in memory, for the
endpoint's era. What `endpoints test` sends and what `endpoints add/update` check a
filter or template against."""

from __future__ import annotations

import time

import msgspec

from streams.core.alerts import ALERT_TYPE, OPENED, Alert
from streams.core.endpoints import TRIGGERS, EndpointDirectory
from streams.core.events import decode_message_event, decode_room_event
from streams.core.leads import compile_lead_patterns
from streams.core.sessions import SessionProcessor, Source
from streams.core.table_store import TableStore
from streams.dev import demo
from streams.settings import Settings
from topics import codec
from topics.catalogue import Topic
from topics.records import EndpointRecord

# `--type` names: the webhook each one picks among the samples
SAMPLE_TYPES = {  # close first: the default, the webhook with every part of a room
    "close": "LivechatSession",
    "message": "Message",
    "start": "LivechatSessionStart",
    "taken": "LivechatSessionTaken",
}
MAX_RECORD_BYTES = 1 << 20


def sample_alert(settings: Settings, endpoint: EndpointRecord) -> bytes:
    """An alert as an alert endpoint gets it: a CRM of its workspace failing."""
    alert = Alert(OPENED, "https://crm.example.com/hooks/livechat", endpoint.workspace, "crm",
                  time.time(), "HTTP 503")  # fmt: skip
    return codec.dumps(alert.body(settings.alert_policy()))


def sample_webhooks(settings: Settings, endpoint: EndpointRecord) -> dict[str, bytes]:
    """Each webhook type the seed conversation makes for `endpoint` (its era, its
    navigation option, every trigger, no filter), by type: the first of each; for an alert
    endpoint, a sample alert."""
    if endpoint.alerts:
        return {ALERT_TYPE: sample_alert(settings, endpoint)}
    wanting_all = msgspec.structs.replace(
        endpoint, triggers=TRIGGERS, filter="", enabled=True, workspace="default"
    )
    directory = EndpointDirectory(wanting_all, settings.compat)
    tables: tuple[dict[bytes, bytes], dict[bytes, bytes], dict[bytes, bytes]] = ({}, {}, {})
    processor = SessionProcessor(
        settings.session_policy(),
        TableStore(*tables),
        compile_lead_patterns(settings.lead_email_regex, settings.lead_phone_regex),
        time.time,
        directory,
    )
    bodies: dict[str, bytes] = {}
    for offset, record in enumerate(demo.seed_conversation("sample-room", run="sample")):
        source = Source(record.topic.value, 0, offset)
        raw = record.encoded()
        if record.topic is Topic.ROOMS:
            jobs = processor.on_room_event(
                decode_room_event(record.key, raw, MAX_RECORD_BYTES),  # type: ignore[arg-type]
                source,
            )
        else:
            jobs = processor.on_message_event(
                decode_message_event(record.key, raw, MAX_RECORD_BYTES), source
            )
        for job in jobs:
            bodies.setdefault(job.type, codec.dumps(job.body))
    return bodies


def sample_of(settings: Settings, endpoint: EndpointRecord, kind: str) -> tuple[str, bytes]:
    """The sample a `--type` names: (webhook type, body); an alert endpoint's is an alert,
    whatever the type."""
    if endpoint.alerts:
        return ALERT_TYPE, sample_alert(settings, endpoint)
    wanted = SAMPLE_TYPES[kind]
    bodies = sample_webhooks(settings, endpoint)
    if wanted not in bodies:
        raise KeyError(f"the seed conversation makes no {wanted} webhook in this era")
    return wanted, bodies[wanted]
