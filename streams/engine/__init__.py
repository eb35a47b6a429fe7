"""The one package that touches Faust's and aiokafka's internals.

Everything else in omnihooks uses Faust's public API (apps, agents, tables, timers) and this
package's functions: `order_by_timestamp` for co-partitioned inputs, `finish` to acknowledge
an event an agent processed. faust-streaming and aiokafka are pinned to exact versions, and
`tests/unit/engine/test_engine_hooks.py` checks that every hook used here still has its shape.
"""

from streams.engine.acks import finish
from streams.engine.consumer import let_go_before_waiting, order_by_timestamp
from streams.engine.memory import release_freed_memory
from streams.engine.outbox import Outbox
from streams.engine.tables import DirectTable, bytes_table, forget_locally, rocksdb_memory

__all__ = [
    "DirectTable",
    "Outbox",
    "bytes_table",
    "finish",
    "forget_locally",
    "let_go_before_waiting",
    "order_by_timestamp",
    "release_freed_memory",
    "rocksdb_memory",
]
