"""Helpers the integration tests share (imported as a sibling module, like window_helpers)."""

from __future__ import annotations

from typing import Any

from agent_events.agent_runtime.event_bus import SystemEvent
from agent_events.producers import KafkaEventProducer

__all__ = ["produce"]


async def produce(
    bootstrap: str, topic: str, events: list[SystemEvent], **producer_settings: Any
) -> None:
    """Send ``events`` in order with our producer and assert every one was acknowledged.

    ``linger_ms`` defaults to 20, so brokers see multi-record batches (which Tansu's end
    offsets get wrong: the tests must survive that).
    """
    producer_settings.setdefault("linger_ms", 20)
    async with KafkaEventProducer(
        bootstrap_servers=bootstrap, topic=topic, **producer_settings
    ) as producer:
        for event in events:
            await producer.send(event)
        await producer.flush()
    assert producer.stats.acknowledged == len(events), producer.stats
