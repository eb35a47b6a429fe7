"""Static group membership (KIP-345) that still hands partitions over on purpose.

With `OMNIHOOKS_GROUP_INSTANCE_ID` (a StatefulSet pod's name) a worker is a static member:
one that crashes and comes back under the same name gets its partitions back without a
rebalance, its RocksDB tables still on its volume. But a static member never leaves the
group when it closes (aiokafka skips LeaveGroup for one, as Kafka's own client does), so a
worker stopped for good (a scale-down, a drain) would keep its partitions for a session
timeout. A worker stopping on purpose therefore leaves with LeaveGroup v3, which names the
instance: the group rebalances at once and warm standbys take its rooms over.
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka.errors import KafkaError
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Int16, Int32, Schema, String

log = logging.getLogger(__name__)


class LeaveGroupResponseV3(Response):  # type: ignore[misc]  # aiokafka's base, untyped
    API_KEY = 13
    API_VERSION = 3
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("members", Array(
            ("member_id", String("utf-8")),
            ("group_instance_id", String("utf-8")),
            ("error_code", Int16),
        )),
    )  # fmt: skip


class LeaveGroupRequestV3(RequestStruct):  # type: ignore[misc]
    API_KEY = 13
    API_VERSION = 3
    RESPONSE_TYPE = LeaveGroupResponseV3
    SCHEMA = Schema(
        ("group_id", String("utf-8")),
        ("members", Array(("member_id", String("utf-8")), ("group_instance_id", String("utf-8")))),
    )


class StaticLeaveGroup(Request[LeaveGroupRequestV3]):  # type: ignore[misc]
    """LeaveGroup naming a static member (v3, the first version that can)."""

    API_KEY = 13

    def __init__(self, group: str, member_id: str, instance: str) -> None:
        self._group, self._member = group, (member_id, instance)

    def build(self, request_struct_class: type[LeaveGroupRequestV3]) -> LeaveGroupRequestV3:
        return request_struct_class(self._group, [self._member])


def leave_when_closed(consumer: Any) -> None:
    """Make a static member leave the group when its consumer closes: aiokafka's close
    stops the member's coordination (no rejoin can follow) and then asks to leave, which it
    skips for a static member; this leave names the instance instead."""
    coordinator = getattr(consumer, "_coordinator", None)
    instance = getattr(coordinator, "_group_instance_id", None)
    if coordinator is None or instance is None:
        return

    async def leave() -> None:
        if coordinator.generation > 0:
            await _leave(coordinator, instance)
        coordinator.reset_generation()

    coordinator._maybe_leave_group = leave


async def _leave(coordinator: Any, instance: str) -> None:
    request = StaticLeaveGroup(coordinator.group_id, coordinator.member_id, instance)
    try:
        response = await coordinator._send_req(request)
    except KafkaError as exc:
        log.warning("static member %s could not leave the group: %s", instance, exc)
        return
    errors = [response.error_code, *(member[2] for member in response.members)]
    if any(errors):
        log.warning("static member %s could not leave the group: error %s", instance, errors)
    else:
        log.info("static member %s left the group: its partitions move now", instance)
