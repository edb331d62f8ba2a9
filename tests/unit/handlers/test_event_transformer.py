"""EventTransformer: the transform works on a copy; other subscribers keep the original."""

from __future__ import annotations

import socket
from datetime import datetime

import pytest

from agent_events.agent_runtime.errors import InvalidEventError
from agent_events.agent_runtime.event_bus import EventBus, EventType, SystemEvent
from agent_events.consumers.handlers import EventTransformer, stamp_processing_metadata


def event() -> SystemEvent:
    return SystemEvent(
        event_type=EventType.AGENT_STARTED, agent_id="a", metadata={"nested": {"k": 1}}
    )


async def test_transform_does_not_change_the_event_other_subscribers_see() -> None:
    transformed: list[SystemEvent] = []
    originals: list[SystemEvent] = []

    def mutate(e: SystemEvent) -> SystemEvent:
        e.metadata["added"] = True
        nested = e.metadata["nested"]
        assert isinstance(nested, dict)
        nested["k"] = 2
        return e

    async def keep(e: SystemEvent) -> None:
        transformed.append(e)

    async def keep_original(e: SystemEvent) -> None:
        originals.append(e)

    async with EventBus() as bus:
        await bus.subscribe(EventType.ANY, EventTransformer(mutate, keep))
        await bus.subscribe(EventType.ANY, keep_original)
        await bus.publish(event())
        await bus.join()
    assert transformed[0].metadata == {"nested": {"k": 2}, "added": True}
    assert originals[0].metadata == {"nested": {"k": 1}}


async def test_stamp_processing_metadata_adds_hostname_and_aware_time() -> None:
    seen: list[SystemEvent] = []
    await EventTransformer(stamp_processing_metadata, seen.append)(event())
    metadata = seen[0].metadata
    assert metadata["hostname"] == socket.gethostname()
    assert datetime.fromisoformat(str(metadata["processed_at"])).tzinfo is not None


async def test_transform_returning_none_drops_the_event() -> None:
    seen: list[SystemEvent] = []
    await EventTransformer(lambda e: None, seen.append)(event())
    assert seen == []


async def test_async_transform_is_awaited() -> None:
    seen: list[SystemEvent] = []

    async def rename(e: SystemEvent) -> SystemEvent:
        return e.model_copy(update={"agent_id": "renamed"})

    await EventTransformer(rename, seen.append)(event())
    assert seen[0].agent_id == "renamed"


async def test_transform_returning_something_else_raises() -> None:
    with pytest.raises(InvalidEventError, match="must return a SystemEvent"):
        await EventTransformer(lambda e: {"not": "an event"}, print)(event())  # type: ignore[arg-type, return-value]
