"""Faust's aiokafka transport with omnihooks' consumer and an idempotent, acks=all producer
whose flush waits for every record it was handed.

Faust turns idempotence on only inside transactions. Every job, dead letter and changelog
record we write should survive a broker restart without being lost (acks=all) or doubled by
the producer's own retries (idempotence), so the worker's broker URLs use this transport
(scheme `omnihooks://`, registered as a `faust.transports` entry point).

A table write goes to its changelog through Faust's producer buffer (`send_soon`), and Faust
commits input offsets after `producer.flush()`. That flush gives up after 0.1 s without a
record leaving the buffer, and misses the record its sender task already took from the
queue but had not yet handed to aiokafka: a commit then passes an input record whose state
change never reached the changelog, and a worker killed right after loses that change for
good (the kill test's room closed without its two messages). Here `flush` returns only once
every record handed to `send_soon` before it was called is acknowledged by the brokers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from faust.transport.drivers import aiokafka as driver

from streams.engine.consumer import OrderedConsumer

# A changelog record not acknowledged by then fails the commit (the worker restarts and
# reads the records again) rather than committing past state that may be lost.
FLUSH_TIMEOUT_S = 120.0


class UnflushedWrites(RuntimeError):
    """Records handed to the producer were not acknowledged: no offset may pass them."""


class IdempotentProducer(driver.Producer):
    _handed: set[asyncio.Future[Any]]

    def _settings_extra(self) -> Mapping[str, Any]:
        return {"acks": "all", "enable_idempotence": True}

    def __post_init__(self) -> None:
        super().__post_init__()
        self._handed = set()

    def send_soon(self, fut: Any) -> None:
        self._handed.add(fut)
        fut.add_done_callback(self._handed.discard)
        super().send_soon(fut)

    async def flush(self) -> None:
        handed = list(self._handed)
        await super().flush()
        if not handed:
            return
        done, waiting = await asyncio.wait(handed, timeout=FLUSH_TIMEOUT_S)
        failed = [fut for fut in done if fut.cancelled() or fut.exception() is not None]
        if waiting or failed:
            raise UnflushedWrites(
                f"{len(waiting)} records not acknowledged after {FLUSH_TIMEOUT_S:.0f} s, "
                f"{len(failed)} failed: not committing past them"
            )


class Transport(driver.Transport):
    Producer = IdempotentProducer
    Consumer = OrderedConsumer
