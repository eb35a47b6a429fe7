"""Faust's aiokafka transport with omnihooks' consumer and an idempotent, acks=all producer.

Faust turns idempotence on only inside transactions. Every job, dead letter and changelog
record we write should survive a broker restart without being lost (acks=all) or doubled by
the producer's own retries (idempotence), so the worker's broker URLs use this transport
(scheme `omnihooks://`, registered as a `faust.transports` entry point).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.transport.drivers import aiokafka as driver

from streams.engine.consumer import OrderedConsumer


class IdempotentProducer(driver.Producer):
    def _settings_extra(self) -> Mapping[str, Any]:
        return {"acks": "all", "enable_idempotence": True}


class Transport(driver.Transport):
    Producer = IdempotentProducer
    Consumer = OrderedConsumer
