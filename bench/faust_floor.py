"""What Faust itself costs on this machine: a worker whose agent does nothing with each event
but (optionally) write table keys, run by `bench/run.py` on a pre-filled topic.

    python -m bench.faust_floor TOPIC COUNT WRITES OUT [URL]   (settings from the environment)

WRITES is a number of table keys per event, written through Faust's tables; "3d": three
keys through the engine's `DirectTable`, as the worker's session tables write a chat message:
deferred (each key's latest value sent at the commit), two keys new with each event (the
message and its order entry) and one per room (the room's state, the job's key). "recover":
no writes, but the sessions worker's three tables (same names, consumer group and store
options), so the app recovers the changelogs a sessions worker would: the floor of a
worker's memory holding rooms. Once recovered it gives back freed memory as the worker does
and logs "floor settled".

BENCH_PROCESSING_GUARANTEE=exactly_once runs it with Faust's Kafka transactions.

Same app factory, transport, worker class and producer settings as the real worker. Creates
OUT.ready at its first event, writes events/s from its first to its COUNT-th event to OUT,
and keeps running until it is stopped. With URL, each event's value is also POSTed there
(aiohttp, 64 at a time, one task per event, with the job's delivery id as webhook-id: the
worker's pattern without its retry, ack and metrics work), and the rate counts answered POSTs.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from streams.app import AssignmentWatch, create_app
from streams.engine import DirectTable, bytes_table, release_freed_memory
from streams.engine import finish as finish_event
from streams.engine.kafka import KafkaConfig
from streams.ops.topic_admin import apply_topics, changelogs_of_app
from streams.settings import load_settings
from streams.worker import Worker, _use_uvloop
from topics import codec


def main(topic_name: str, count: int, write_spec: str, out: Path, url: str | None) -> None:
    recover = write_spec == "recover"
    writes = 0 if recover else int(write_spec.rstrip("d"))
    direct = write_spec.endswith("d")
    _use_uvloop()
    omnihooks = create_app(load_settings(), role="sessions" if recover else "delivery")
    app = omnihooks.app
    if recover:
        for name in ("rooms", "messages", "message-order"):
            bytes_table(app, name, omnihooks.settings.partitions, name)
        watch = AssignmentWatch(app)

        @app.timer(interval=1.0)
        async def settle() -> None:
            if watch.changed():
                release_freed_memory()
                print("floor settled", flush=True)

    # bench/costs.py: the same agent with Faust's Kafka transactions
    app.conf.processing_guarantee = os.environ.get("BENCH_PROCESSING_GUARANTEE", "at_least_once")
    tables = [
        app.Table(
            f"floor-{n}", key_type=bytes, value_type=bytes, partitions=omnihooks.settings.partitions
        )
        for n in range(writes)
    ]
    for table in tables:
        table.key_serializer = "raw"
        table.value_serializer = "raw"
    targets: list[Any] = [DirectTable(app, t, deferred=True) for t in tables] if direct else tables
    topic = app.topic(topic_name, key_type=bytes, value_type=bytes,
                      key_serializer="raw", value_serializer="raw")  # fmt: skip
    ready = out.with_suffix(".ready")
    value = b"x" * 400  # about a message's size in the messages table

    clock = {"started": 0.0, "done": 0}

    def finish(done: int) -> None:
        if done == count:
            rate = (count - 1) / (time.perf_counter() - clock["started"])
            out.write_text(f"{rate:.1f}\n")

    async def floor(stream: Any) -> None:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) if url else None
        pending = asyncio.Semaphore(256)
        tasks: set[asyncio.Task[None]] = set()

        async def post(body: bytes) -> None:
            assert session is not None and url is not None
            # the job's delivery id as webhook-id, so the receiver times each one
            headers = {"webhook-id": str(codec.loads(body).get("delivery_id", ""))}
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
            finally:
                # a failed POST counts too: the stage must end, and the receiver never fails
                pending.release()
                clock["done"] += 1
                finish(int(clock["done"]))

        seen = 0
        async for event in stream.noack().events():
            if seen == 0:
                clock["started"] = time.perf_counter()
                ready.touch()
            message = event.message
            for n, table in enumerate(targets):
                # the last table's key is the room's; the others are new with each event
                per_event = n < len(targets) - 1 and direct
                suffix = b"%d:%d" % (message.partition, message.offset) if per_event else b""
                table[event.key + str(n).encode() + suffix] = value
            finish_event(event)  # as the worker's agents acknowledge: commits go on
            seen += 1
            if session is None:
                finish(seen)
                continue
            await pending.acquire()
            task = asyncio.create_task(post(event.value))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    app.agent(topic, name="floor")(floor)
    # Workers create no topics: the tables' changelogs exist first, as `topics apply` makes them.
    apply_topics(KafkaConfig.of(omnihooks.settings), changelogs_of_app(app), 30.0)
    Worker(app, loglevel="info", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], Path(sys.argv[4]),
         sys.argv[5] if len(sys.argv) > 5 else None)  # fmt: skip
