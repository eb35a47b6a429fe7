"""Relay mode's Faust side: the agent that turns each body `omnihooks ingest` stored into
jobs for its workspace's endpoints (streams/core/relay.py), sent like every other job.

Relayed rooms live in Rocket.Chat; what omnihooks keeps of one is its CRM's answer on
`crm-data`. The agent indexes each room by its visitor (`relay-visitors`), so an erasure
request (`omnihooks erase`, one per partition of the relay topic) finds the visitor's rooms
and tombstones their answers.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from faust.types import StreamT

from streams.agents.sessions import JobSender, apply_each
from streams.agents.tables import RELAY_VISITORS
from streams.app import Omnihooks
from streams.core.clock import iso
from streams.core.erasure import ERASE_EVENT, VisitorIndex
from streams.core.events import InvalidEvent
from streams.core.relay import InvalidBody, read_body, relay_jobs
from streams.engine import DirectTable, Outbox, bytes_table
from topics.catalogue import Topic
from topics.records import ErasureReceipt, IngestedRecord, WebhookJob

log = logging.getLogger(__name__)


class RelayAgent:
    def __init__(self, omnihooks: Omnihooks, out: JobSender, index: VisitorIndex) -> None:
        self.directory = omnihooks.endpoints
        self.loaded = omnihooks.endpoints_loaded
        self.out = out
        self.index = index
        self.crm_data = Outbox(omnihooks.app, omnihooks.topics[Topic.CRM_DATA])
        self.receipts = Outbox(omnihooks.app, omnihooks.topics[Topic.ERASURES])

    def apply(self, message: Any) -> list[WebhookJob]:
        try:
            record = IngestedRecord.from_json(message.value)
            if record.type == ERASE_EVENT:
                self.erase(message.key.decode(), record.body.split(","), message.partition)
                return []
            ingested = read_body(record.workspace, record.body.encode())
        except (InvalidBody, ValueError) as exc:  # msgspec's and JSON's errors are ValueErrors
            raise InvalidEvent(f"not a relayable body: {exc}") from None
        if ingested.visitor is not None:
            self.index.add(ingested.key, message.partition, ingested.visitor)
        return relay_jobs(ingested, self.directory, iso(time.time()))

    def erase(self, erasure_id: str, digests: list[str], partition: int) -> None:
        """The visitor's relayed rooms in this partition: their answers get tombstones (the
        crm-data partition the delivery worker's producer chose: the same key, the same
        partitioner), their index entries go, and what went is written on `erasures`."""
        rooms = self.index.rooms_of_any(digests, partition)
        for room_id in rooms:
            self.crm_data.send(room_id.encode(), None)
            for digest in digests:
                self.index.remove(digest, partition, room_id)
        relay_topic = Topic.ROCKETCHAT_WEBHOOKS.value
        receipt = ErasureReceipt(erasure_id, partition, tuple(rooms), 0, iso(time.time()),
                                 topic=relay_topic)  # fmt: skip
        self.receipts.send(erasure_id.encode(), receipt.to_json())
        if rooms:
            log.warning("erasure %s: %d relayed rooms' crm-data erased in partition %d",
                        erasure_id, len(rooms), partition)  # fmt: skip

    async def run(self, stream: StreamT[Any]) -> None:
        await self.loaded.wait()
        await apply_each(stream, self.out, self.apply)


def register_relay_agent(omnihooks: Omnihooks) -> None:
    app = omnihooks.app
    partitions = omnihooks.catalogue[RELAY_VISITORS.partitions_of].partitions
    table = bytes_table(app, RELAY_VISITORS.name, partitions, RELAY_VISITORS.help)
    index = VisitorIndex(DirectTable(app, table))
    agent = RelayAgent(omnihooks, JobSender(omnihooks), index)
    topic = omnihooks.topics[Topic.ROCKETCHAT_WEBHOOKS]
    app.agent(topic, name="relay")(agent.run)
