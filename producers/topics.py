"""Creating topics with partitions and replication, and waiting until they are usable.

``create_topics`` returning is not enough: the topic is missing from metadata for a few
hundred milliseconds afterwards (0.2-0.3 s on Kafka 4.1), and a producer or consumer
started in that gap sees "unknown topic". Waiting here, until every partition has a
leader, keeps that race out of every caller.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from agent_events.agent_runtime.errors import BrokerUnavailable, ConfigError
from agent_events.transport import KafkaConnectionConfig, admin_client

__all__ = ["TopicSpec", "ensure_topics"]

_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic to create: name, partitions, replication and topic configs."""

    name: str
    partitions: int = 12
    replication_factor: int = 1
    configs: dict[str, str] = field(default_factory=dict)


async def ensure_topics(
    connection: KafkaConnectionConfig,
    specs: list[TopicSpec],
    *,
    exist_ok: bool = True,
    wait_s: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; returns the names that were created.

    Returns once every topic shows all its partitions with leaders in metadata (for a
    topic that already existed: the partitions it has, whatever ``spec`` asked for).
    Raises :class:`ConfigError` when the broker refuses a topic (a bad config, too
    high a replication factor, or it exists and ``exist_ok`` is false) and
    :class:`BrokerUnavailable` when metadata does not show it within ``wait_s``.
    """
    created: list[str] = []
    async with admin_client(connection, what="creating topics") as admin:
        for spec in specs:
            new_topic = NewTopic(
                spec.name,
                spec.partitions,
                spec.replication_factor,
                topic_configs=dict(spec.configs),
            )
            response = await admin.create_topics([new_topic])
            for entry in response.topic_errors:
                code = entry[1]
                if code == 0:
                    created.append(entry[0])
                    continue
                error = for_code(code)
                if error is TopicAlreadyExistsError and exist_ok:
                    continue
                message = entry[2] if len(entry) > 2 and entry[2] else error.__name__
                raise ConfigError(f"the broker refused to create topic {entry[0]!r}: {message}")
        expected = {s.name: (s.partitions if s.name in created else 1) for s in specs}
        await _wait_for_leaders(admin, expected, wait_s)
    return created


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, expected: dict[str, int], wait_s: float
) -> None:
    """Wait until each topic shows at least ``expected[topic]`` partitions, all with leaders."""
    give_up_at = time.monotonic() + wait_s
    pending = dict(expected)
    while pending:
        for topic in await admin.describe_topics(sorted(pending)):
            name = topic.get("topic")
            if name in pending and _has_all_leaders(topic, pending[name]):
                del pending[name]
        if not pending:
            return
        if time.monotonic() > give_up_at:
            raise BrokerUnavailable(
                f"topics {sorted(pending)} were created but metadata did not show all their "
                f"partitions with leaders within {wait_s}s"
            )
        await asyncio.sleep(_POLL_S)


def _has_all_leaders(topic: dict[str, object], partitions: int) -> bool:
    if topic.get("error_code", 0) != 0:
        return False
    parts = topic.get("partitions")
    if not isinstance(parts, list) or len(parts) < partitions:
        return False
    return all(isinstance(p, dict) and int(p.get("leader", -1)) >= 0 for p in parts)
