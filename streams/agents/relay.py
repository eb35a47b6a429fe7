"""Relay mode's Faust side: the agent that turns each body `omnihooks ingest` stored into
jobs for its workspace's endpoints (streams/core/relay.py), sent like every other job."""

from __future__ import annotations

import time
from typing import Any

from faust.types import StreamT

from streams.agents.sessions import JobSender
from streams.app import Omnihooks
from streams.core.clock import iso
from streams.core.relay import InvalidBody, read_body, relay_jobs
from streams.engine import finish
from topics import codec
from topics.catalogue import Topic
from topics.records import IngestedRecord


class RelayAgent:
    def __init__(self, omnihooks: Omnihooks, out: JobSender) -> None:
        self.directory = omnihooks.endpoints
        self.loaded = omnihooks.endpoints_loaded
        self.out = out

    async def run(self, stream: StreamT[Any]) -> None:
        await self.loaded.wait()
        async for event in stream.noack().events():  # type: ignore[attr-defined]
            message = event.message
            try:
                record = IngestedRecord.from_json(message.value)
                ingested = read_body(record.workspace, record.body.encode())
                jobs = relay_jobs(ingested, self.directory, iso(time.time()))
            except (InvalidBody, codec.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                await self.out.reject(message, f"not a relayable body: {exc}")
            else:
                await self.out.send_or_reject(message, jobs)
            finish(event)


def register_relay_agent(omnihooks: Omnihooks) -> None:
    agent = RelayAgent(omnihooks, JobSender(omnihooks))
    topic = omnihooks.topics[Topic.ROCKETCHAT_WEBHOOKS]
    omnihooks.app.agent(topic, name="relay")(agent.run)
