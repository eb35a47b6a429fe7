"""Relay mode's Faust side: the agent that turns each body `omnihooks ingest` stored into
jobs for its workspace's endpoints (streams/core/relay.py), sent like every other job."""

from __future__ import annotations

import time
from typing import Any

from faust.types import StreamT

from streams.agents.sessions import JobSender, apply_each
from streams.app import Omnihooks
from streams.core.clock import iso
from streams.core.events import InvalidEvent
from streams.core.relay import InvalidBody, read_body, relay_jobs
from topics.catalogue import Topic
from topics.records import IngestedRecord, WebhookJob


class RelayAgent:
    def __init__(self, omnihooks: Omnihooks, out: JobSender) -> None:
        self.directory = omnihooks.endpoints
        self.loaded = omnihooks.endpoints_loaded
        self.out = out

    def apply(self, message: Any) -> list[WebhookJob]:
        try:
            record = IngestedRecord.from_json(message.value)
            ingested = read_body(record.workspace, record.body.encode())
        except (InvalidBody, ValueError) as exc:  # msgspec's and JSON's errors are ValueErrors
            raise InvalidEvent(f"not a relayable body: {exc}") from None
        return relay_jobs(ingested, self.directory, iso(time.time()))

    async def run(self, stream: StreamT[Any]) -> None:
        await self.loaded.wait()
        await apply_each(stream, self.out, self.apply)


def register_relay_agent(omnihooks: Omnihooks) -> None:
    agent = RelayAgent(omnihooks, JobSender(omnihooks))
    topic = omnihooks.topics[Topic.ROCKETCHAT_WEBHOOKS]
    omnihooks.app.agent(topic, name="relay")(agent.run)
