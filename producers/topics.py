"""Creating topics with partitions and replication, and waiting until they are usable."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from agent_runtime.errors import KafkaError
from producers.config import KafkaConnectionConfig
from producers.connect import start_with_backoff

__all__ = ["TopicSpec", "ensure_topics"]


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic to create: name, partitions, replication and topic configs."""

    name: str
    partitions: int = 12
    replication_factor: int = 1
    configs: dict[str, str] = field(default_factory=dict)


async def ensure_topics(
    connection: KafkaConnectionConfig, specs: list[TopicSpec], *, wait_s: float = 30.0
) -> list[str]:
    """Create the topics that do not exist yet; returns the names that were created.

    Returns once every topic shows all its partitions in metadata: a topic is
    missing from metadata for a moment after ``create_topics`` returns.
    """
    admin = AIOKafkaAdminClient(**connection.client_kwargs())
    await start_with_backoff(
        admin.start,
        what="admin client",
        bootstrap_servers=connection.bootstrap_servers,
        deadline_s=connection.connect_timeout_s,
        close=admin.close,
    )
    created: list[str] = []
    try:
        for spec in specs:
            new_topic = NewTopic(
                spec.name,
                spec.partitions,
                spec.replication_factor,
                topic_configs=dict(spec.configs),
            )
            try:
                response = await admin.create_topics([new_topic])
            except TopicAlreadyExistsError:
                continue
            for topic_error in response.topic_errors:
                name, code = topic_error[0], topic_error[1]
                if code == 0:
                    created.append(name)
                elif for_code(code) is not TopicAlreadyExistsError:
                    message = topic_error[2] if len(topic_error) > 2 else ""
                    raise KafkaError(
                        f"cannot create topic {name!r}: {for_code(code).__name__} {message or ''}".strip()
                    )
        await _wait_for_metadata(admin, specs, wait_s)
    finally:
        await admin.close()
    return created


async def _wait_for_metadata(
    admin: AIOKafkaAdminClient, specs: list[TopicSpec], wait_s: float
) -> None:
    give_up_at = time.monotonic() + wait_s
    pending = {s.name for s in specs}
    while pending:
        described = await admin.describe_topics(sorted(pending))
        for topic in described:
            if topic.get("error_code", 0) == 0 and topic.get("partitions"):
                pending.discard(topic["topic"])
        if not pending:
            return
        if time.monotonic() > give_up_at:
            raise KafkaError(
                f"topics {sorted(pending)} did not appear in metadata within {wait_s}s"
            )
        await asyncio.sleep(0.1)
