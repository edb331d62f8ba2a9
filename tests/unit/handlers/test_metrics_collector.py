"""MetricsCollector: per-agent counts and duration statistics in bounded memory."""

from __future__ import annotations

from agent_events.agent_runtime.event_bus import EventBus, EventType, SystemEvent
from agent_events.consumers.handlers import DurationStats, MetricsCollector


def completed(agent: str, ms: int | None) -> SystemEvent:
    return SystemEvent(event_type=EventType.AGENT_COMPLETED, agent_id=agent, execution_time_ms=ms)


async def test_collector_on_bus_reports_duration_stats_per_agent() -> None:
    collector = MetricsCollector()
    async with EventBus() as bus:
        await bus.subscribe(EventType.AGENT_COMPLETED, collector.collect_metrics)
        for ms in (100, 300, 200):
            await bus.publish(completed("chatbot", ms))
        await bus.publish(completed("search", 50))
        await bus.join()
    stats = collector.get_stats()
    assert stats["chatbot_duration"]["count"] == 3
    assert stats["chatbot_duration"]["avg"] == 200
    assert stats["chatbot_duration"]["min"] == 100
    assert stats["chatbot_duration"]["max"] == 300
    assert stats["search_duration"]["count"] == 1
    assert collector.get_counts() == {"chatbot": 3, "search": 1}


async def test_completion_without_duration_is_counted_but_not_timed() -> None:
    collector = MetricsCollector()
    await collector(completed("a", None))
    await collector(completed("a", 10))
    assert collector.get_counts() == {"a": 2}
    assert collector.get_stats()["a_duration"]["count"] == 1


async def test_agent_with_only_missing_durations_has_no_duration_stats() -> None:
    collector = MetricsCollector()
    await collector(completed("a", None))
    assert collector.get_stats() == {}
    assert collector.stats_for("a") is None


async def test_zero_ms_is_a_recorded_duration() -> None:
    collector = MetricsCollector()
    await collector(completed("a", 0))
    assert collector.get_stats()["a_duration"]["min"] == 0
    assert collector.get_stats()["a_duration"]["count"] == 1


async def test_events_of_other_types_are_ignored() -> None:
    collector = MetricsCollector()
    await collector(SystemEvent(event_type=EventType.AGENT_STARTED, agent_id="a"))
    assert collector.get_counts() == {}


async def test_percentiles_are_exact_while_the_reservoir_holds_every_value() -> None:
    collector = MetricsCollector(reservoir_size=1000)
    for ms in range(1, 101):
        await collector(completed("a", ms))
    summary = collector.stats_for("a")
    assert summary is not None
    assert (summary["p50"], summary["p95"]) == (50, 95)


def test_reservoir_keeps_a_fixed_sample_but_exact_count_min_max() -> None:
    stats = DurationStats(reservoir_size=16, seed=1)
    for value in range(10_000):
        stats.observe(value)
    assert stats.sample_size == 16
    summary = stats.summary()
    assert (summary["count"], summary["min"], summary["max"]) == (10_000, 0, 9_999)
    assert 0 <= summary["p50"] <= 9_999


async def test_agents_beyond_max_agents_forget_the_least_recently_seen() -> None:
    collector = MetricsCollector(max_agents=3)
    for agent in ("a", "b", "c", "a", "d"):
        await collector(completed(agent, 1))
    assert collector.agent_count == 3
    assert set(collector.get_counts()) == {"a", "c", "d"}
