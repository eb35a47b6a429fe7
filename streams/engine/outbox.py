"""Records an agent sends without waiting for them: jobs from the session pipeline.

An `Outbox` hands each record to librdkafka in one call when the worker's producer is
`RdKafkaProducer`, else to Faust's producer buffer (`send_soon`). Either way the producer's
flush, run before every commit, waits for the record: an input offset is committed only
once the jobs its record made are on the brokers.
"""

from __future__ import annotations

from typing import Any

from streams.engine.transport import RdKafkaProducer


class Outbox:
    def __init__(self, app: Any, topic: Any) -> None:
        self._app, self._topic = app, topic
        self._name = topic.get_topic_name()

    def send(self, key: bytes, value: bytes | None, partition: int | None = None) -> None:
        """`value` None: a tombstone."""
        producer = self._app.producer
        if isinstance(producer, RdKafkaProducer):
            producer.produce(self._name, key, value, partition)
        else:
            self._topic.send_soon(key=key, value=value, partition=partition)
