import re
from pathlib import Path

import pytest

from tests.support.files import DOCS, REPO
from topics.catalogue import Topic, load_catalogue

CONTRACT = DOCS / "contract.md"


def test_catalogue_holds_every_topic_of_the_contract() -> None:
    catalogue = load_catalogue()
    names = set(catalogue.names("omnichannel.").values())
    in_contract = set(re.findall(r"`(omnichannel\.[a-z-]+)`", CONTRACT.read_text()))
    assert in_contract == names
    assert len(names) == len(Topic)


def test_room_state_topics_are_co_partitioned() -> None:
    catalogue = load_catalogue()
    counts = {catalogue[t].partitions for t in (Topic.ROOMS, Topic.MESSAGES, Topic.CRM_DATA)}
    assert len(counts) == 1


def test_crm_data_is_compacted_and_inputs_are_not() -> None:
    catalogue = load_catalogue()
    assert catalogue[Topic.CRM_DATA].cleanup == "compact"
    assert catalogue[Topic.ROOMS].cleanup == "delete"


def test_partition_override_keeps_co_partitioning() -> None:
    catalogue = load_catalogue(partitions=3)
    counts = {spec.topic: spec.partitions for spec in catalogue.specs}
    assert counts.pop(Topic.ENDPOINT_HEALTH) == 1, "one alert agent folds it whole"
    assert set(counts.values()) == {3}


def test_prefix_changes_every_name() -> None:
    names = load_catalogue().names("acme.")
    assert names[Topic.WEBHOOK_DEAD_LETTERS] == "acme.webhook-dead-letters"


def test_min_insync_is_clamped_to_replication() -> None:
    spec = load_catalogue()[Topic.ROOMS]
    assert spec.config(replication=1)["min.insync.replicas"] == "1"
    assert spec.config(replication=3)["min.insync.replicas"] == "2"


def test_mismatched_co_partitioned_counts_are_refused(tmp_path: Path) -> None:
    source = (REPO / "topics" / "catalogue.toml").read_text()
    broken = source.replace(
        'holds = "messages in omnichannel rooms"', 'holds = "messages"\npartitions = 5'
    )
    path = tmp_path / "catalogue.toml"
    path.write_text(broken)
    with pytest.raises(ValueError, match="co-partitioned"):
        load_catalogue(path=path)
