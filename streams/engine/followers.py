"""Services that read a small compacted topic whole and follow it while the worker runs:
`endpoint-controls` (operators' pauses) and `endpoints` (every workspace's CRMs). Each
worker needs all of such a topic, not its partitions' share, so it is read outside the
consumer group (`streams/engine/whole_topic.py`). A worker that cannot read it at start
crashes rather than act without it; `loaded` is set once what existed at start is applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import mode

from streams.engine.kafka import KafkaConfig
from streams.engine.whole_topic import Apply, follow_whole_topic
from streams.settings import Settings

log = logging.getLogger(__name__)


def follower_service(
    settings: Settings, topic: str, partitions: int, apply: Apply, loaded: asyncio.Event
) -> type[mode.Service]:
    """A service reading `topic` whole into `apply`, then following it."""

    class FollowerService(mode.Service):
        _follower: asyncio.Task[None] | None = None
        _crashing: asyncio.Future[None] | None = None

        async def on_start(self) -> None:
            follow = follow_whole_topic(KafkaConfig.of(settings), topic, partitions, apply, loaded)
            self._follower = asyncio.create_task(follow, name=f"follow-{topic}")
            self._follower.add_done_callback(self._ended)

        def _ended(self, task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is not None:
                exc = task.exception()
                log.error("reading %s failed: %s", topic, exc)
                self._crashing = asyncio.ensure_future(self.crash(exc))  # type: ignore[arg-type]

        async def on_stop(self) -> None:
            if self._follower is not None:
                self._follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._follower

    return FollowerService
