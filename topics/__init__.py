"""The topic catalogue: names, partitions, retention, compaction, record schemas."""

from topics.catalogue import Catalogue, Topic, TopicSpec, load_catalogue

__all__ = ["Catalogue", "Topic", "TopicSpec", "load_catalogue"]
