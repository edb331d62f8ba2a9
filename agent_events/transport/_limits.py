"""How large a record each topic takes: its ``max.message.bytes``, asked once.

Writers of copies (dead letters, late events) size their producer and the topics they
create for what the source topic accepts, so a record the source took can be copied.
One DescribeConfigs request, read-only; a broker that does not answer it (Tansu, no
DescribeConfigs permission) leaves the topic out and the caller assumes Kafka's default.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError as AIOKafkaError

from agent_events.transport._clients import admin_client
from agent_events.transport._connection import KafkaConnectionConfig

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "max_message_bytes"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 1_048_588
"""Kafka's default ``max.message.bytes`` (1 MiB plus the record batch overhead)."""

_NO_ERROR = 0


async def max_message_bytes(
    connection: KafkaConnectionConfig, topics: Iterable[str]
) -> dict[str, int]:
    """``max.message.bytes`` of each existing topic the broker tells (missing ones left out)."""
    names = sorted(set(topics))
    if not names:
        return {}
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    try:
        async with admin_client(connection, what="topic limits") as admin:
            responses = await admin.describe_configs(resources)
    except AIOKafkaError as exc:
        logger.debug("could not read max.message.bytes of %s: %r", names, exc)
        return {}
    found: dict[str, int] = {}
    for response in responses:
        for error_code, _message, _type, name, entries, *_ in response.resources:
            if error_code != _NO_ERROR:
                continue
            for entry in entries:
                if entry[0] == "max.message.bytes" and str(entry[1]).isdigit():
                    found[name] = int(entry[1])
    return found
