"""EventAggregator: event-time sliding window, one alert per crossing, bounded keys."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from agent_events.agent_runtime.errors import ConfigError
from agent_events.agent_runtime.event_bus import EventBus, EventType, SystemEvent
from agent_events.consumers.handlers import ALERT_KIND, AggregationAlert, EventAggregator

T0 = datetime(2020, 1, 1, tzinfo=UTC)


def at(
    seconds: float, agent: str = "a", event_type: EventType = EventType.ERROR_OCCURRED
) -> SystemEvent:
    return SystemEvent(
        event_type=event_type, agent_id=agent, timestamp=T0 + timedelta(seconds=seconds)
    )


class Alerts:
    def __init__(self) -> None:
        self.received: list[AggregationAlert] = []

    async def __call__(self, alert: AggregationAlert) -> None:
        self.received.append(alert)


async def test_alert_fires_once_per_crossing_not_for_every_event_past_it() -> None:
    alerts = Alerts()
    aggregator = EventAggregator(window_seconds=60, threshold=10, on_threshold=alerts)
    for i in range(20):
        await aggregator(at(i))
    assert len(alerts.received) == 1
    alert = alerts.received[0]
    assert (alert.count, alert.agent_id, alert.key) == (10, "a", "error_occurred_a")


async def test_alert_rearms_after_the_count_drops_below_the_threshold() -> None:
    alerts = Alerts()
    aggregator = EventAggregator(window_seconds=10, threshold=3, on_threshold=alerts)
    for t in (0, 1, 2, 3):  # crossing 1
        await aggregator(at(t))
    await aggregator(at(100))  # window slid: count 1, re-armed
    for t in (101, 102):  # crossing 2
        await aggregator(at(t))
    assert len(alerts.received) == 2


async def test_window_is_measured_on_event_time_not_the_wall_clock() -> None:
    alerts = Alerts()
    aggregator = EventAggregator(window_seconds=60, threshold=3, on_threshold=alerts)
    for t in (0, 100, 200):  # years ago, but 100 s apart: never 3 in one minute
        await aggregator(at(t))
    assert alerts.received == []
    assert aggregator.count(EventType.ERROR_OCCURRED, "a") == 1


async def test_out_of_order_events_inside_the_window_are_counted() -> None:
    alerts = Alerts()
    aggregator = EventAggregator(window_seconds=60, threshold=3, on_threshold=alerts)
    for t in (50, 10, 30):
        await aggregator(at(t))
    assert len(alerts.received) == 1
    assert aggregator.late_events == 0


async def test_events_older_than_the_window_are_late_and_ignored() -> None:
    aggregator = EventAggregator(window_seconds=60, threshold=3)
    await aggregator(at(1000))
    await aggregator(at(900))
    assert aggregator.late_events == 1
    assert aggregator.count(EventType.ERROR_OCCURRED, "a") == 1


async def test_counts_match_a_brute_force_window_on_shuffled_event_times() -> None:
    rng = random.Random(7)
    times = [rng.uniform(0, 600) for _ in range(500)]
    agents = [rng.choice("xyz") for _ in times]
    aggregator = EventAggregator(window_seconds=60, threshold=1000)
    accepted: list[tuple[float, str]] = []
    stream_time = float("-inf")
    for t, agent in zip(times, agents, strict=True):
        stream_time = max(stream_time, t)
        if t > stream_time - 60:
            accepted.append((t, agent))
        await aggregator(at(t, agent))
    for agent in "xyz":
        expected = sum(1 for t, a in accepted if a == agent and t > stream_time - 60)
        assert aggregator.count(EventType.ERROR_OCCURRED, agent) == expected


async def test_keys_are_separate_per_event_type_and_agent() -> None:
    alerts = Alerts()
    aggregator = EventAggregator(window_seconds=60, threshold=2, on_threshold=alerts)
    await aggregator(at(0, "a"))
    await aggregator(at(1, "b"))
    await aggregator(at(2, "a", EventType.AGENT_STARTED))
    assert alerts.received == []


async def test_idle_keys_are_purged() -> None:
    aggregator = EventAggregator(window_seconds=10, threshold=5)
    for i in range(50):
        await aggregator(at(i * 100, agent=f"agent-{i}"))
    assert aggregator.purge_idle_keys() == 49
    assert aggregator.key_count == 1


async def test_keys_never_exceed_max_keys() -> None:
    aggregator = EventAggregator(window_seconds=10_000, threshold=5, max_keys=8)
    for i in range(100):
        await aggregator(at(i, agent=f"agent-{i}"))
    assert aggregator.key_count <= 8


async def test_alert_is_published_as_a_custom_event_and_not_counted_again() -> None:
    published: list[SystemEvent] = []
    async with EventBus() as bus:
        aggregator = EventAggregator(window_seconds=60, threshold=2, alert_bus=bus)
        await bus.subscribe(EventType.ANY, aggregator)
        await bus.subscribe(EventType.CUSTOM, published.append)
        for t in (0, 1):
            await bus.publish(at(t))
        await bus.join()
        await bus.join()  # the alert was published from inside the handler
    [alert_event] = published
    assert alert_event.metadata["kind"] == ALERT_KIND
    assert alert_event.metadata["count"] == 2
    assert alert_event.metadata["source_event_type"] == "error_occurred"
    assert aggregator.count(EventType.CUSTOM, "a") == 0


def test_threshold_must_fit_in_the_per_key_cap() -> None:
    with pytest.raises(ConfigError):
        EventAggregator(threshold=10, max_events_per_key=5)
