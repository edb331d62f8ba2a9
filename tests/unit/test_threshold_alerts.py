"""One threshold-alert rule: the in-process aggregator and the Kafka window trigger agree.

The seed's aggregation example ("10 events of a type for an agent within 60 s") is run
through :class:`EventAggregator` (in process) and through a sliding-window
:class:`WindowEngine` (what ``agent-events consume aggregate --window sliding:60s``
runs); both must fire the same alerts, for the same events, with the same counts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from agent_events.agent_runtime.events import EventType, SystemEvent
from agent_events.consumers.handlers import AggregationAlert, EventAggregator
from agent_events.consumers.threshold import should_alert
from agent_events.consumers.windows.aggregations import Aggregations, key_function
from agent_events.consumers.windows.definitions import SlidingWindow
from agent_events.consumers.windows.engine import WindowEngine
from agent_events.consumers.windows.state import WindowStore

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
START_MS = 1_772_366_400_000  # 2026-03-01T12:00Z
TYPES = (EventType.ERROR_OCCURRED, EventType.AGENT_STARTED)

Alert = tuple[str, str, int, int]
"""(event type, agent, timestamp of the event that fired it in ms, count)."""


def event(agent: str, at_ms: int, event_type: EventType = EventType.ERROR_OCCURRED) -> SystemEvent:
    return SystemEvent(
        event_type=event_type,
        agent_id=agent,
        timestamp=EPOCH + timedelta(milliseconds=START_MS + at_ms),
    )


def epoch_ms(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


async def in_process_alerts(
    events: list[SystemEvent], window_s: int, threshold: int
) -> list[Alert]:
    received: list[AggregationAlert] = []
    aggregator = EventAggregator(
        window_seconds=window_s, threshold=threshold, on_threshold=received.append
    )
    for e in events:
        await aggregator.aggregate(e)
    return [(a.event_type.value, a.agent_id, epoch_ms(a.window_end), a.count) for a in received]


def window_alerts(events: list[SystemEvent], window_s: int, threshold: int) -> list[Alert]:
    aggregations = Aggregations(need_merge=True)
    engine = WindowEngine(
        SlidingWindow(window_s * 1_000),
        aggregations,
        WindowStore(aggregations),
        key_of=key_function(("event_type", "agent_id")),
        threshold=threshold,
    )
    alerts: list[Alert] = []
    for e in events:
        assert engine.add(e), "an in-order event is never late"
        alerts += [
            (a.event.event_type.value, a.event.agent_id, epoch_ms(a.event.timestamp), a.count)
            for a in engine.take_alerts()
        ]
    return alerts


def seed_example() -> list[SystemEvent]:
    """A burst, a steady rate above the threshold, a rate below it, and a second burst."""
    burst = [event("agent-1", s * 5_000) for s in range(12)]  # 12 errors in 60 s
    steady = [event("agent-2", s * 2_000) for s in range(150)]  # 30 a minute for 5 minutes
    below = [event("agent-3", s * 7_000, EventType.AGENT_STARTED) for s in range(40)]  # 9 a minute
    again = [event("agent-1", 200_000 + s * 1_000) for s in range(10)]
    return sorted([*burst, *steady, *below, *again], key=lambda e: e.timestamp)


async def test_the_seed_example_gives_the_same_alerts_in_process_and_on_kafka_windows() -> None:
    events = seed_example()
    expected = window_alerts(events, 60, 10)
    assert await in_process_alerts(events, 60, 10) == expected
    fired = {(agent, at_ms - START_MS) for _, agent, at_ms, _ in expected}
    assert fired == {
        ("agent-1", 45_000),  # the 10th error of the first burst
        ("agent-1", 209_000),  # the second burst, a quiet minute later
        ("agent-2", 18_000),  # a steady rate alerts once per window length ...
        ("agent-2", 78_000),
        ("agent-2", 138_000),
        ("agent-2", 198_000),
        ("agent-2", 258_000),  # ... not at every event, and not only once
    }


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 30_000), st.sampled_from(["a", "b"]), st.sampled_from(TYPES)),
        max_size=80,
    ),
    st.integers(1, 10),
    st.integers(1, 6),
)
async def test_any_in_order_stream_gives_the_same_alerts_in_process_and_on_kafka_windows(
    raw: list[tuple[int, str, EventType]], window_s: int, threshold: int
) -> None:
    events = sorted(
        (event(agent, at, etype) for at, agent, etype in raw), key=lambda e: e.timestamp
    )
    assert await in_process_alerts(events, window_s, threshold) == window_alerts(
        events, window_s, threshold
    )


def test_a_window_overlapping_the_previous_alert_window_does_not_fire_again() -> None:
    assert should_alert(10, 10, start_ms=0, previous_end_ms=None)
    assert not should_alert(9, 10, start_ms=0, previous_end_ms=None)
    assert not should_alert(12, 10, start_ms=99, previous_end_ms=100)
    assert should_alert(12, 10, start_ms=100, previous_end_ms=100)
