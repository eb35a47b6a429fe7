"""`omnihooks ingest`: where a Rocket.Chat server sends its own CRM webhooks (relay mode).

Point Rocket.Chat's `Livechat_webhookUrl` at `http://<host>:8090/rocketchat/<workspace>` and
its `Livechat_secret_token` at `OMNIHOOKS_INGEST_TOKEN`. Each POST is checked (token in
constant time, JSON with a known `type`, size), written to `rocketchat-webhooks` with
acks=all and idempotence, and answered 200 only once the broker has acknowledged it:

- 404 for a workspace with no endpoint (the `workspaces` topic, which the endpoints
  commands keep: the ingest server never reads endpoints or their secrets), so a typo is
  refused rather than stored and never delivered.
- 401 for a wrong token, 400 for a body that is not a webhook, 413 for one over
  `OMNIHOOKS_INGEST_MAX_BYTES`, 503 while Kafka does not take the write. Rocket.Chat retries
  on its own (`apps/meteor/app/livechat/server/lib/webhooks.ts`), so nothing is lost; the
  same body posted again is delivered once (relay ids are the body's digest).
- The 200's body is the CRM's latest answer for the room, read from `crm-data` (delivery
  writes each 200 answer there): Rocket.Chat stores whatever answers its webhook as the
  room's `crmData`, so it gets the CRM's answer one webhook late (README, "Relay mode").

The relay agent (streams/agents/relay.py) turns the stored bodies into jobs.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections import OrderedDict

from aiohttp import web

from streams import tracing
from streams.core.clock import iso
from streams.core.endpoints import NAME
from streams.core.relay import InvalidBody, read_body
from streams.engine.kafka import AsyncWriter, KafkaConfig, KafkaWriteError
from streams.engine.whole_topic import follow_whole_topic
from streams.settings import Settings
from topics import codec
from topics.catalogue import Topic, load_catalogue
from topics.records import IngestedRecord

log = logging.getLogger(__name__)

ANSWERS_KEPT = 100_000  # rooms whose latest CRM answer is kept for the ingest's replies


class LatestAnswers:
    """The CRM's latest answer per room, from `crm-data`; the oldest rooms are forgotten
    beyond `ANSWERS_KEPT` (their next webhook then gets an empty answer)."""

    def __init__(self, kept: int = ANSWERS_KEPT) -> None:
        self._answers: OrderedDict[str, str] = OrderedDict()
        self._kept = kept

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:  # a tombstone: the room was erased (`omnihooks erase`)
            if key is not None:
                self._answers.pop(key.decode("utf-8", "replace"), None)
            return
        data = codec.loads(value)
        room, body = str(data["room_id"]), str(data["body"])
        self._answers[room] = body
        self._answers.move_to_end(room)
        while len(self._answers) > self._kept:
            self._answers.popitem(last=False)

    def get(self, room: str) -> str:
        return self._answers.get(room, "")


class KnownWorkspaces:
    """The workspaces that have endpoints, from `workspaces` (the endpoints commands keep
    it): a POST for any other would be stored and never delivered."""

    def __init__(self, default: str | None) -> None:
        self._names: set[str] = set()
        self._default = default  # the environment's endpoint's workspace, if it names one
        self.loaded = asyncio.Event()

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        if value is None:
            self._names.discard(key.decode())
        else:
            self._names.add(key.decode())

    def __contains__(self, workspace: str) -> bool:
        return workspace == self._default or workspace in self._names


class KafkaWriter:
    """Writes each accepted body to `rocketchat-webhooks`; `write` returns once the brokers
    have it, so Rocket.Chat gets its 200 only for what is stored."""

    def __init__(self, settings: Settings, timeout_s: float) -> None:
        catalogue = load_catalogue(settings.partitions)
        spec = catalogue[Topic.ROCKETCHAT_WEBHOOKS]
        self.topic = spec.name(settings.topic_prefix)
        # A write not acknowledged by then is answered 503: Rocket.Chat sends it again.
        self._writer = AsyncWriter(
            KafkaConfig.of(settings), timeout_s,
            **{"linger.ms": 1, "message.max.bytes": spec.max_message_bytes},
        )  # fmt: skip

    async def write(self, key: bytes, value: bytes, traceparent: str | None = None) -> None:
        """Return once the brokers have the record; KafkaWriteError if they cannot take it.
        Rocket.Chat's trace context, if its request had one, goes on as the record's
        `traceparent` header (streams/tracing.py)."""
        headers: list[tuple[str, str | bytes | None]] | None = (
            [(tracing.HEADER, traceparent.encode())] if traceparent else None
        )
        await self._writer.write(self.topic, key, value, headers)

    def close(self) -> None:
        self._writer.close()


def build_ingest_app(
    settings: Settings,
    writer: KafkaWriter,
    answers: LatestAnswers,
    workspaces: KnownWorkspaces | None = None,
) -> web.Application:
    token = settings.ingest_token.get_secret_value().encode()
    limit = settings.ingest_max_bytes

    async def ingest(request: web.Request) -> web.Response:
        workspace = request.match_info["workspace"]
        if not NAME.match(workspace):
            return web.Response(status=404, text="unknown workspace name\n")
        given = request.headers.get("X-RocketChat-Livechat-Token", "").encode()
        if not hmac.compare_digest(given, token):
            return web.Response(status=401, text="wrong or missing X-RocketChat-Livechat-Token\n")
        if request.content_length is not None and request.content_length > limit:
            return web.Response(status=413, text=f"over {limit} bytes\n")
        if workspaces is not None:
            if not workspaces.loaded.is_set():
                return web.Response(status=503, text="workspaces not read from Kafka yet\n")
            if workspace not in workspaces:
                return web.Response(
                    status=404, text=f"no endpoint in workspace {workspace!r}: nothing stored\n"
                )
        body = await request.read()  # the app's client_max_size answers 413 past the limit
        try:
            ingested = read_body(workspace, body)
            text = body.decode()
        except (InvalidBody, UnicodeDecodeError) as exc:
            return web.Response(status=400, text=f"not a Rocket.Chat webhook: {exc}\n")
        record = IngestedRecord(workspace, ingested.type, iso(time.time()), text)
        try:
            traceparent = request.headers.get(tracing.HEADER)
            await writer.write(ingested.key.encode(), record.to_json(), traceparent)
        except KafkaWriteError as exc:
            log.warning("not taken by Kafka, answered 503: %s", exc)
            return web.Response(status=503, text="Kafka did not take the write; send it again\n")
        answer = "" if ingested.type == "LivechatOfflineMessage" else answers.get(ingested.key)
        return web.Response(status=200, text=answer, content_type="application/json")

    async def healthz(request: web.Request) -> web.Response:
        # Ready once it knows which workspaces exist: before, every POST would get a 503.
        if workspaces is not None and not workspaces.loaded.is_set():
            return web.Response(status=503, text="reading the workspaces from Kafka\n")
        return web.Response(text="ok\n")

    async def livez(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")  # the process answers: Kafka may still be away

    # aiohttp answers 413 itself for a body past the limit, chunked ones too.
    app = web.Application(client_max_size=limit)
    app.router.add_post("/rocketchat/{workspace}", ingest)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/livez", livez)
    return app


async def serve(settings: Settings, host: str, port: int) -> None:
    """Run until cancelled: follow `crm-data`, answer Rocket.Chat's POSTs."""
    catalogue = load_catalogue(settings.partitions)
    answers = LatestAnswers()
    loaded = asyncio.Event()
    crm_data = catalogue[Topic.CRM_DATA]
    # Both keep trying while Kafka is away: started during an outage, the server reads them
    # once it is back, and answers as one that ran through it.
    follower = asyncio.create_task(follow_whole_topic(
        KafkaConfig.of(settings), crm_data.name(settings.topic_prefix),
        crm_data.partitions, answers.apply, loaded, keep_trying=True,
    ))  # fmt: skip
    env = settings.default_endpoint()
    workspaces = KnownWorkspaces(env.workspace if env is not None else None)
    known = catalogue[Topic.WORKSPACES]
    names = asyncio.create_task(follow_whole_topic(
        KafkaConfig.of(settings), known.name(settings.topic_prefix), known.partitions,
        workspaces.apply, workspaces.loaded, keep_trying=True,
    ))  # fmt: skip
    writer = KafkaWriter(settings, settings.ingest_timeout_s)
    app = build_ingest_app(settings, writer, answers, workspaces)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("ingest listening on http://%s:%d/rocketchat/<workspace>", host, port)
    print(f"ingest ready on http://{host}:{port}/rocketchat/<workspace>", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        follower.cancel()
        names.cancel()
        await runner.cleanup()
        writer.close()
