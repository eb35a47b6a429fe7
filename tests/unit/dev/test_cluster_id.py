"""The local broker's cluster id: never read as a flag by Kafka's storage tool."""

from __future__ import annotations

import re

from streams.dev.local_kafka import new_cluster_id


def test_cluster_ids_never_start_with_a_dash_and_have_kafkas_form() -> None:
    ids = [new_cluster_id() for _ in range(20_000)]
    # With 20k draws an id starting with "-" (1 in 64) would appear ~300 times unfiltered.
    assert not [cluster_id for cluster_id in ids if cluster_id.startswith("-")]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id) for cluster_id in ids)
    assert len(set(ids)) == len(ids)
