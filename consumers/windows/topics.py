"""The topics a window processor needs: created when missing, checked when present."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer

from agent_events.agent_runtime.errors import ConfigError
from agent_events.consumers.copies import CopySizes, copy_sizes
from agent_events.consumers.scan import topic_partitions
from agent_events.consumers.windows.config import WindowedAggregationConfig
from agent_events.producers.topics import TopicSpec, ensure_topics

__all__ = ["CHANGELOG_TOPIC_CONFIGS", "TopicLayout", "ensure_window_topics"]

CHANGELOG_TOPIC_CONFIGS: dict[str, str] = {
    "cleanup.policy": "compact",
    # Roll and clean segments often: a restore reads what compaction has not removed.
    "segment.ms": "600000",
    "min.cleanable.dirty.ratio": "0.1",
    "delete.retention.ms": "3600000",
}


@dataclass(frozen=True, slots=True)
class TopicLayout:
    """What the processor learnt: the input partitions, and the internal topics' size."""

    sources: frozenset[str]
    """Every input partition as ``topic:partition``."""
    partitions: int
    """Partitions of the changelog and repartition topics (the largest input topic's)."""
    copies: CopySizes
    """How large the copies of input records (DLQ, late, repartition) may be."""


async def ensure_window_topics(
    config: WindowedAggregationConfig, reader: AIOKafkaConsumer
) -> TopicLayout:
    """Create missing topics; check that state and input partitions line up.

    Internal topics get as many partitions as the largest input topic (the state
    of partition p lives in changelog partition p); output topics that already
    exist are used as they are.
    """
    counts = {t: len(await topic_partitions(reader, t)) for t in config.topics}
    sources = frozenset(f"{t}:{p}" for t, n in counts.items() for p in range(n))
    partitions = max(counts.values())
    rf = config.replication_factor
    copy_topics = [t for t in (config.late_topic, config.dlq_topic) if t is not None]
    if config.repartitions:
        copy_topics.append(config.repartition_topic)
    copies = await copy_sizes(config.connection(), config.topics, copy_topics)
    wanted = [TopicSpec(config.changelog_topic, partitions, rf, dict(CHANGELOG_TOPIC_CONFIGS))]
    for topic in copy_topics:
        wanted.append(TopicSpec(topic, partitions, rf, copies.topic_configs()))
    for output in (config.output_topic, config.alerts_output):
        if output is not None:
            wanted.append(TopicSpec(output, partitions, rf))
    found = {spec.name: await _partition_count(reader, spec.name) for spec in wanted}
    missing = [spec for spec in wanted if found[spec.name] is None]
    if missing:
        await ensure_topics(config.connection(), missing)
    internal = [config.changelog_topic]
    if config.repartitions:
        internal.append(config.repartition_topic)
    for topic in internal:
        have = found[topic]
        if have is not None and have != partitions:
            raise ConfigError(
                f"{topic} has {have} partitions but the input has {partitions}; they must "
                "match (the state of partition p lives in changelog partition p). Use a new "
                "group or store name after changing the input's partitions"
            )
    return TopicLayout(sources, partitions, copies)


async def _partition_count(reader: AIOKafkaConsumer, topic: str) -> int | None:
    try:
        return len(await topic_partitions(reader, topic))
    except ConfigError:
        return None
