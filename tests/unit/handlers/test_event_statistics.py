"""EventStatistics: counts by type, timing by agent, 0 ms included, bounded."""

from __future__ import annotations

from agent_events.agent_runtime.event_bus import EventBus, EventType, SystemEvent
from agent_events.consumers.handlers import OTHER_TYPES, EventStatistics


def event(event_type: EventType, agent: str = "a", ms: int | None = None) -> SystemEvent:
    return SystemEvent(event_type=event_type, agent_id=agent, execution_time_ms=ms)


async def test_summary_counts_by_type_and_times_by_agent() -> None:
    statistics = EventStatistics()
    async with EventBus() as bus:
        await bus.subscribe(EventType.ANY, statistics.record)
        await bus.publish(event(EventType.AGENT_STARTED))
        await bus.publish(event(EventType.AGENT_COMPLETED, ms=100))
        await bus.publish(event(EventType.AGENT_COMPLETED, ms=300))
        await bus.join()
    summary = statistics.get_summary()
    assert summary["total_events"] == 3
    assert summary["by_type"] == {"agent_started": 1, "agent_completed": 2}
    timing = summary["timing"]["a"]
    assert (timing["count"], timing["avg"], timing["min"], timing["max"]) == (2, 200, 100, 300)


async def test_zero_ms_counts_as_a_duration() -> None:
    statistics = EventStatistics()
    await statistics(event(EventType.AGENT_COMPLETED, ms=0))
    assert statistics.get_summary()["timing"]["a"]["count"] == 1


async def test_events_without_duration_are_counted_but_not_timed() -> None:
    statistics = EventStatistics()
    await statistics(event(EventType.AGENT_STARTED))
    assert statistics.get_summary()["timing"] == {}


async def test_timing_keeps_at_most_max_agents() -> None:
    statistics = EventStatistics(max_agents=2)
    for agent in "abcde":
        await statistics(event(EventType.AGENT_COMPLETED, agent, 1))
    assert set(statistics.get_summary()["timing"]) == {"d", "e"}


async def test_type_labels_beyond_max_types_are_counted_as_other() -> None:
    statistics = EventStatistics(max_types=1)
    await statistics(event(EventType.AGENT_STARTED))
    await statistics(event(EventType.AGENT_COMPLETED))
    assert statistics.get_summary()["by_type"] == {"agent_started": 1, OTHER_TYPES: 1}
