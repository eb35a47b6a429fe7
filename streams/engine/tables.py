"""Faust tables of raw bytes, and dropping a table's keys from memory only.

Faust derives a changelog's serializers from the table's types ("json" for bytes) and ignores
a schema's; they are set before the changelog topic and store are made, so what omnihooks
wrote (orjson bytes) is read back byte for byte on recovery.

On RocksDB (`OMNIHOOKS_STORE=rocksdb`) Faust's defaults are sized for one big table per
process: a 2 GB block cache and three 64 MB write buffers for each partition's database. A
worker holds a database per table and partition (12 with 3 tables on 4 partitions), so its
memory would grow with the rooms up to gigabytes before anything reached disk. 1 MB write
buffers (two) and a 1 MB cache per database cap that at about 36 MB for 12 databases, so
memory stays flat; the hot rooms are few and the OS page cache holds recently read blocks.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterable, Iterator, Mapping, MutableMapping
from typing import Any

from faust.streams import current_event

from streams.engine.transport import RdKafkaProducer

ROCKSDB_OPTIONS = {
    "write_buffer_size": 1024 * 1024,
    "max_write_buffer_number": 2,
    "target_file_size_base": 8 * 1024 * 1024,
    "block_cache_size": 1024 * 1024,
    "block_cache_compressed_size": 0,
}


def bytes_table(
    app: Any,
    name: str,
    partitions: int,
    help_: str,
    topic_configs: Mapping[str, str] | None = None,
) -> Any:
    table = app.Table(
        name,
        key_type=bytes,
        value_type=bytes,
        partitions=partitions,
        help=help_,
        extra_topic_configs=dict(topic_configs or {}),
        options=dict(ROCKSDB_OPTIONS) if str(app.conf.store).startswith("rocksdb") else None,
    )
    table.key_serializer = "raw"
    table.value_serializer = "raw"
    return table


def forget_locally(table: Any, keys: Iterable[bytes]) -> int:
    """Drop keys from the worker's copy, writing nothing to the changelog (which forgets them
    by its own retention). Returns how many were dropped."""
    store = table.data
    dropped = 0
    for key in keys:
        if key in store:
            del store[key]
            dropped += 1
    return dropped


class DirectTable(MutableMapping[bytes, bytes]):
    """A Faust table written without Faust's per-write machinery.

    `table[key] = value` in Faust runs its key-set hooks and sensors, wraps the changelog
    record in a `FutureMessage`, queues it for a buffer task that awaits a send per record;
    at three writes per chat message that was the session pipeline's limit (docs/history.md).
    With librdkafka's producer (`OMNIHOOKS_PRODUCER=librdkafka`) this writes the table's
    store and hands the changelog record to librdkafka in one call: the same key, value and
    partition (the current event's, as Faust's), the same changelog, the same recovery. The
    producer's flush waits for these records like any other, so a commit never passes a
    write not on the brokers; they are batched longer than job sends (`STATE_LINGER_MS`),
    since only the commit waits.
    With aiokafka's producer every write goes through Faust's table as before.

    `deferred`: the changelog gets each key's latest value when the next flush starts (before
    every commit and every rebalance), not every write: Kafka Streams' record cache. A room
    touched by k records between commits is one changelog record, not k. Nothing is lost by
    holding them: no offset is committed before that flush has them on the brokers, and a
    crash before it reads every uncommitted record again. The value is held, not read back
    from the store at the flush: a rebalance closes revoked partitions' stores first.
    """

    def __init__(self, app: Any, table: Any, *, deferred: bool = False) -> None:
        self._app, self._table = app, table
        self._producer: RdKafkaProducer | None = None
        self._direct: bool | None = None
        self._deferred = deferred
        self._unsent: dict[bytes, tuple[int, bytes | None]] = {}  # key -> partition, value

    def _direct_producer(self) -> RdKafkaProducer | None:
        if self._direct is None:
            producer = self._app.producer
            self._direct = isinstance(producer, RdKafkaProducer)
            self._producer = producer if self._direct else None
            self._changelog = self._table.changelog_topic.get_topic_name()
            store = self._table.data
            self._memory = getattr(store, "data", None) if _is_memory(store) else None
            self._persist = None if self._memory is not None else store.set_persisted_offset
            self._report = None if self._persist is None else self._on_report
            if self._deferred and producer is not None:
                producer.before_flush(self._send_unsent)
        return self._producer

    def _store(self) -> MutableMapping[bytes, bytes]:
        self._direct_producer()
        return self._memory if self._memory is not None else self._table.data  # type: ignore[no-any-return]

    def __getitem__(self, key: bytes) -> bytes:
        return self._store()[key]

    def get(self, key: bytes, default: Any = None) -> Any:
        return self._store().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._store()

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._store())

    def items(self) -> ItemsView[bytes, bytes]:
        # The store's own pass over its pairs. The mapping mixin's reads each key again, on
        # RocksDB through a `get` per key and Faust's key-to-partition LRU: the due-event
        # schedule's re-read of a million rooms took several times as long that way
        # (docs/history.md).
        return self._store().items()

    def __len__(self) -> int:
        return len(self._store())

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._write(key, value)

    def __delitem__(self, key: bytes) -> None:
        if key not in self._store():
            raise KeyError(key)
        self._write(key, None)

    def _write(self, key: bytes, value: bytes | None) -> None:
        producer = self._direct_producer()
        if producer is None:
            if value is None:
                del self._table[key]
            else:
                self._table[key] = value
            return
        event = current_event()
        assert event is not None, "a table is written while processing an event"
        partition = event.message.partition
        store = self._store()
        if value is None:
            del store[key]
        else:
            store[key] = value
        if self._deferred:
            self._unsent[key] = (partition, value)
            return
        producer.produce_state(self._changelog, key, value, partition, self._report)

    def _send_unsent(self) -> None:
        unsent, self._unsent = self._unsent, {}
        assert self._producer is not None
        produce, changelog, report = self._producer.produce_state, self._changelog, self._report
        for key, (partition, value) in unsent.items():
            produce(changelog, key, value, partition, report)

    def _on_report(self, err: Any, msg: Any) -> None:
        # RocksDB keeps the changelog offset its data reaches, so a restart reads only what
        # came after (Faust's `_on_changelog_sent`); memory rebuilds from the start anyway.
        if err is None and self._persist is not None:
            self._persist(_tp(msg.topic(), msg.partition()), msg.offset())


def _is_memory(store: Any) -> bool:
    from faust.stores.memory import Store as MemoryStore

    return isinstance(store, MemoryStore)


def _tp(topic: str, partition: int) -> Any:
    from faust.types import TP

    return TP(topic, partition)


# RocksDB's own memory, outside Python's heap (rocksdb.org: "Memory usage in RocksDB").
ROCKSDB_MEMORY = {
    "index and filters": "rocksdb.estimate-table-readers-mem",
    "memtables": "rocksdb.cur-size-all-mem-tables",
    "block cache": "rocksdb.block-cache-usage",
}


def rocksdb_memory(app: Any) -> dict[str, int]:
    """Bytes RocksDB holds in memory across the worker's table databases, by kind; empty when
    the tables are not on RocksDB. The part of a worker's memory that grows with what is on
    disk (index and filter blocks stay in memory while a file is open)."""
    totals: dict[str, int] = {}
    for table in app.tables.values():
        dbs = getattr(table.data, "_dbs", None)
        if not isinstance(dbs, dict):
            continue
        for db in dbs.values():
            for kind, name in ROCKSDB_MEMORY.items():
                value = db.property_int_value(name)
                totals[kind] = totals.get(kind, 0) + (value or 0)
    return totals
