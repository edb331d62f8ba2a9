"""PriorityEventBus: priority order, FIFO ties, a bounded heap."""

from __future__ import annotations

import pytest

from agent_events.agent_runtime.errors import InvalidEventError, QueueFull
from agent_events.agent_runtime.event_bus import EventType, SystemEvent
from agent_events.consumers.handlers import Priority, PriorityEventBus


def event(name: str) -> SystemEvent:
    return SystemEvent(event_type=EventType.CUSTOM, agent_id="a", metadata={"name": name})


class Recorder:
    def __init__(self) -> None:
        self.names: list[str] = []

    async def __call__(self, e: SystemEvent) -> None:
        self.names.append(str(e.metadata["name"]))


async def test_held_events_reach_subscribers_in_priority_order() -> None:
    recorder = Recorder()
    async with PriorityEventBus() as bus:
        await bus.subscribe(EventType.ANY, recorder)
        await bus.publish(event("low"), Priority.LOW)
        await bus.publish(event("medium"))
        await bus.publish(event("high"), priority=Priority.HIGH)
        assert recorder.names == []
        assert await bus.dispatch_events() == 3
        await bus.join()
    assert recorder.names == ["high", "medium", "low"]


async def test_equal_priorities_keep_publish_order() -> None:
    recorder = Recorder()
    async with PriorityEventBus() as bus:
        await bus.subscribe(EventType.ANY, recorder)
        for i in range(5):
            await bus.publish(event(f"m{i}"), Priority.MEDIUM)
        await bus.publish(event("h"), Priority.HIGH)
        await bus.dispatch_events()
        await bus.join()
    assert recorder.names == ["h", "m0", "m1", "m2", "m3", "m4"]


async def test_held_events_are_bounded_by_max_queue_size() -> None:
    async with PriorityEventBus(max_queue_size=2) as bus:
        await bus.publish(event("a"))
        await bus.publish(event("b"))
        with pytest.raises(QueueFull, match="dispatch_events"):
            await bus.publish(event("c"))
        assert bus.pending == 2


async def test_stop_releases_held_events_before_draining() -> None:
    recorder = Recorder()
    async with PriorityEventBus() as bus:
        await bus.subscribe(EventType.ANY, recorder)
        await bus.publish(event("low"), Priority.LOW)
        await bus.publish(event("high"), Priority.HIGH)
    assert recorder.names == ["high", "low"]


async def test_publish_sync_holds_events_with_their_priority() -> None:
    recorder = Recorder()
    async with PriorityEventBus() as bus:
        await bus.subscribe(EventType.ANY, recorder)
        bus.publish_sync(event("low"), Priority.LOW)
        bus.publish_sync(event("high"), Priority.HIGH)
        await bus.dispatch_events()
        await bus.join()
    assert recorder.names == ["high", "low"]


async def test_publishing_the_any_wildcard_is_rejected() -> None:
    bus = PriorityEventBus()
    bad = SystemEvent.model_construct(event_type=EventType.ANY, agent_id="a")
    with pytest.raises(InvalidEventError):
        await bus.publish(bad)
