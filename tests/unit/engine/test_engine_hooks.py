"""Every Faust and aiokafka internal that `streams.engine` relies on still has the shape it
expects. An upgrade that moves one fails here, loudly, instead of silently turning off an
order or acknowledgement rule in production."""

from __future__ import annotations

import inspect
from importlib.metadata import version

import aiokafka
import faust
import pytest
from faust.stores import memory as memory_store
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as driver
from faust.types import tuples

from streams.engine.consumer import OrderedConsumer, ShortFetchConsumerThread
from streams.engine.transport import (
    IdempotentProducer,
    RdKafkaProducer,
    RdKafkaTransport,
    Transport,
)

# The versions this engine was written and verified against (pyproject.toml pins them).
assert version("faust-streaming") == "0.15.3"
assert version("aiokafka") == "0.14.0"


def params(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("owner", "name", "parameters"),
    [
        (driver.Consumer, "_getmany", ["self", "active_partitions", "timeout"]),
        (driver.Consumer, "getmany", ["self", "timeout"]),
        (driver.Consumer, "seek_to_committed", ["self"]),
        (driver.Consumer, "_seek", ["self", "partition", "offset"]),
        (driver.Consumer, "seek_wait", ["self", "partitions"]),
        (driver.Consumer, "ack", ["self", "message"]),
        (driver.Consumer, "position", ["self", "tp"]),
        (driver.Consumer, "highwaters", ["self", "partitions"]),
        (driver.Consumer, "highwater", ["self", "tp"]),
        (driver.Consumer, "assignment", ["self"]),
        (driver.Consumer, "_get_active_partitions", ["self"]),
        (driver.Consumer, "_to_message", ["self", "tp", "record"]),
        (driver.Consumer, "_new_consumer_thread", ["self"]),
        (driver.Consumer, "_new_offset", ["self", "tp"]),
        (driver.Consumer, "_add_gap", ["self", "tp", "offset_from", "offset_to"]),
        (driver.Consumer, "_is_changelog_tp", ["self", "tp"]),
        (driver.AIOKafkaConsumerThread, "_create_worker_consumer", ["self", "transport"]),
        (
            driver.AIOKafkaConsumerThread,
            "_fetch_records",
            ["self", "consumer", "active_partitions", "timeout", "max_records"],
        ),
        (driver.Producer, "_settings_extra", ["self"]),
        (driver.Producer, "send_soon", ["self", "fut"]),
        (faust.Worker, "on_setup_root_logger", ["self", "logger", "level"]),
        (faust.Worker, "on_startup_finished", ["self"]),
        (faust_consumer.Consumer, "on_buffer_full", ["self", "tp"]),
        (driver.Producer, "flush", ["self"]),
        (
            driver.Producer,
            "send",
            [
                "self",
                "topic",
                "key",
                "value",
                "partition",
                "timestamp",
                "headers",
                "transactional_id",
            ],
        ),
        (memory_store.Store, "set_persisted_offset", ["self", "tp", "offset"]),
    ],
)
def test_each_overridden_or_called_method_keeps_its_signature(
    owner: type, name: str, parameters: list[str]
) -> None:
    method = getattr(owner, name, None)
    assert method is not None, f"{owner.__name__}.{name} is gone"
    assert params(method) == parameters


def test_faust_still_calls_getmany_from_its_drain_loop_and_gaps_from_read_offsets() -> None:
    # The drain loop is what hands our held, merged records to the conductor.
    source = inspect.getsource(faust_consumer.Consumer._drain_messages)
    assert "getmany = self.getmany" in source
    assert "get_read_offset" in source and "_add_gap" in source


def test_faust_streams_still_ack_skipped_events_which_our_consumer_refuses() -> None:
    # If Faust stopped acknowledging skipped events, `finish` would still be right; if the
    # skip moved elsewhere the refusal might be needed in a new place: look again.
    from faust import streams

    source = inspect.getsource(streams.Stream._py_aiter)
    assert "value = skipped_value" in source
    assert "do_ack or value is skipped_value" in source


def test_the_consumer_attributes_the_engine_reads_exist_after_construction() -> None:
    init = inspect.getsource(faust_consumer.Consumer.__init__)
    for attribute in ("_acked", "_acked_index", "_committed_offset", "_gap",
                      "_unacked_messages", "_buffered_partitions", "_read_offset",
                      "can_resume_flow", "not_waiting_next_records"):  # fmt: skip
        assert f"self.{attribute}" in init, attribute
    assert isinstance(faust_consumer.Consumer.__dict__.get("flow_active"), bool)


def test_messages_can_be_tracked_weakly_as_finished() -> None:
    assert "__weakref__" in tuples.Message.__slots__


def test_aiokafka_still_reads_the_fetch_wait_from_the_private_attribute() -> None:
    assert "self._fetch_max_wait_ms" in inspect.getsource(aiokafka.AIOKafkaConsumer.start)


def test_faust_pauses_only_in_its_own_books_and_aiokafka_holds_back_a_node_for_a_batch() -> None:
    # Why `mirror_pauses` exists, and the aiokafka state it changes.
    from aiokafka.consumer import fetcher

    assert "self._paused_partitions.update" in inspect.getsource(
        faust_consumer.Consumer.pause_partitions
    )
    assert "self._paused_partitions = set()" in inspect.getsource(faust_consumer.Consumer)
    actions = inspect.getsource(fetcher.Fetcher._get_actions_per_node)
    assert "if tp in self._records:" in actions and "calculate_backoff()" in actions
    assert "self._records" in inspect.getsource(fetcher.Fetcher.__init__)
    assert "self._notify(self._wait_consume_future)" in inspect.getsource(
        fetcher.Fetcher.fetched_records
    )
    assert "self._update_position()" in inspect.getsource(fetcher.FetchResult.getall)


def test_the_transport_uses_the_engine_classes() -> None:
    assert Transport.Consumer is OrderedConsumer
    assert Transport.Producer is IdempotentProducer
    assert issubclass(ShortFetchConsumerThread, driver.AIOKafkaConsumerThread)
    assert RdKafkaTransport.Consumer is OrderedConsumer
    assert RdKafkaTransport.Producer is RdKafkaProducer


def test_what_direct_table_writes_read_from_faust_still_exists() -> None:
    """`DirectTable` takes the partition from the current event, as Faust's changelog send
    does, keeps the memory store's own dict, and the RocksDB store's persisted offsets."""
    from faust.stores import memory, rocksdb
    from faust.streams import current_event

    assert current_event() is None  # a plain function outside any stream
    store = memory.Store.__new__(memory.Store)
    store.__post_init__()
    assert isinstance(store.data, dict)
    assert "set_persisted_offset" in vars(rocksdb.Store)
    app = faust.App("hooks-direct-table", store="memory://")
    table = app.Table("t", partitions=2)
    assert table.changelog_topic.get_topic_name() == "hooks-direct-table-t-changelog"
    assert app.in_recovery is False and app.rebalancing is False  # AssignmentWatch reads both


def test_the_cython_stream_iterator_still_acks_inline_so_agents_must_use_finish() -> None:
    # The compiled iterator writes `consumer._acked` itself for auto-acked events, past
    # `Consumer.ack`: omnihooks' agents read with noack() and acknowledge through `finish`.
    from pathlib import Path

    from faust import _cython, streams

    assert streams._CStreamIterator is not None
    source = (Path(_cython.__file__).parent / "streams.pyx").read_text()
    assert "consumer._acked[tp]" in source
    assert "return None, self._skipped_value, stream_state" in source


def test_the_recovery_attributes_the_liveness_page_reads_exist() -> None:
    from faust.tables.recovery import Recovery

    source = inspect.getsource(Recovery)
    for attribute in ("self._active_events_received_at", "self._recovery_started_at",
                      "self.in_recovery"):  # fmt: skip
        assert attribute in source, attribute
    assert params(Recovery.active_remaining) == ["self"]
    # The restore report wraps the seek made once per rebalance, its offsets and ends known.
    assert params(Recovery._seek_offsets) == ["self", "consumer", "tps", "offsets", "title"]
    assert 'consumer, assigned_active_tps, active_offsets, "active"' in source


def test_faust_still_clears_channel_queues_when_flow_control_resumes() -> None:
    # Why the consumer holds stream records while the app's flow control is suspended.
    from faust import channels

    assert "clear_on_resume=True" in inspect.getsource(channels.Channel)


def test_faust_still_commits_after_a_producer_flush_that_may_leave_changelog_writes_behind() -> (
    None
):
    # Why `IdempotentProducer.flush` waits for every record handed to `send_soon`: Faust's
    # commit trusts the flush, and the buffer's flush gives up after 0.1 s without progress.
    from faust.tables import base
    from faust.transport import producer

    assert "await self.app.producer.flush()" in inspect.getsource(
        faust_consumer.Consumer._commit_offsets
    )
    assert "timeout=0.1" in inspect.getsource(producer.ProducerBuffer.flush_atmost)
    assert ".send_soon(" in inspect.getsource(base.Collection.send_changelog)


def test_faust_still_hands_on_records_of_a_buffered_partition_and_waits_on_a_full_buffer() -> None:
    # Why `_release_plain` keeps a buffered partition's records: Faust's drain would wait on
    # the full stream buffer, and every other partition with it.
    from faust.transport import conductor

    assert "tp in self._buffered_partitions" in inspect.getsource(faust_consumer.Consumer.getmany)
    assert "self._buffered_partitions.add(tp)" in inspect.getsource(
        faust_consumer.Consumer.on_buffer_full
    )
    handler = inspect.getsource(conductor.ConductorCompiler.build)
    assert "consumer_on_buffer_full(tp)" in handler
    assert "dest_chan.put(dest_event)" in handler


def test_what_the_lag_gauge_reads_from_faust_still_exists() -> None:
    from faust.tables.manager import TableManager

    source = inspect.getsource(faust_consumer.Consumer.__init__)
    assert "self._committed_offset = " in source and "self._read_offset = " in source
    assert params(driver.Consumer.highwaters) == ["self", "partitions"]
    assert isinstance(TableManager.changelog_topics, property)
