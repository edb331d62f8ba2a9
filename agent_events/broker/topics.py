"""Create one topic on a local broker by its bootstrap string (fixtures, CLI, benchmarks).

A thin convenience over :func:`producers.topics.ensure_topics`, which does the work
(and the wait until every partition has a leader) for every caller.
"""

from __future__ import annotations

from collections.abc import Mapping

from agent_events.producers.config import KafkaConnectionConfig
from agent_events.producers.topics import TopicSpec, ensure_topics

__all__ = ["create_topic"]


async def create_topic(
    bootstrap_servers: str,
    name: str,
    *,
    partitions: int = 1,
    replication_factor: int = 1,
    configs: Mapping[str, str] | None = None,
    exist_ok: bool = False,
    timeout_s: float = 30.0,
) -> str:
    """Create ``name`` and return it once metadata shows ``partitions`` partitions with leaders.

    Raises ConfigError if the broker refuses the topic (it exists and not ``exist_ok``, a bad
    config, too high a replication factor) and BrokerUnavailable if the topic is not visible
    within ``timeout_s``.
    """
    connection = KafkaConnectionConfig(
        bootstrap_servers=bootstrap_servers,
        request_timeout_ms=max(1_000, int(timeout_s * 1000)),
        connect_timeout_s=timeout_s,
    )
    spec = TopicSpec(name, partitions, replication_factor, dict(configs or {}))
    await ensure_topics(connection, [spec], exist_ok=exist_ok, wait_s=timeout_s)
    return name
