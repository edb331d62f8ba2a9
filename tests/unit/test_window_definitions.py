"""Window definitions, settings and the output codec: what users type and what travels."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_events.agent_runtime.errors import ConfigError, DecodeError
from agent_events.consumers import windows
from agent_events.consumers.windows import (
    HoppingWindow,
    SessionWindow,
    SlidingWindow,
    TumblingWindow,
    WindowAggregate,
    WindowAggregateCodec,
    WindowedAggregationConfig,
    WindowSettings,
    parse_duration,
    parse_window,
)
from agent_events.consumers.windows.aggregations import WindowValues
from agent_events.consumers.windows.definitions import format_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tumbling:60s", TumblingWindow(60_000)),
        ("hopping:1m/10s", HoppingWindow(60_000, 10_000)),
        ("sliding:500ms", SlidingWindow(500)),
        ("session:30m", SessionWindow(1_800_000)),
        (" Tumbling : 2h ", TumblingWindow(7_200_000)),
    ],
)
def test_text_forms_parse_to_definitions(text: str, expected: object) -> None:
    assert parse_window(text) == expected


def test_grace_is_part_of_the_definition() -> None:
    assert parse_window("tumbling:60s", grace="10s").grace_ms == 10_000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tumbling", "has no size"),
        ("tumbling:60", "not an integer with a unit"),
        ("hopping:60s", "needs a step"),
        ("hopping:10s/60s", "longer than the window"),
        ("sliding:60s/10s", "only hopping windows take a step"),
        ("calendar:5m", "unknown window kind"),
        ("session:0s", "session gap must be a positive"),
        ("session:5m/1m", "only hopping windows take a step"),
        ("tumbling:0s", "positive"),
    ],
)
def test_mistakes_are_config_errors_that_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_window(text)


@given(st.integers(0, 10**12))
def test_durations_print_and_parse_back(ms: int) -> None:
    assert parse_duration(format_duration(ms)) == ms


@given(st.integers(1, 10_000), st.integers(1, 10_000), st.integers(0, 10**9))
def test_hopping_windows_for_a_timestamp_are_exactly_those_containing_it(
    size: int, step: int, ts: int
) -> None:
    if step > size:
        step, size = size, step
    found = HoppingWindow(size, step).windows_for(ts)
    brute = [(s, s + size) for s in range(ts - size + 1, ts + 1) if s % step == 0]
    assert found == brute


@given(
    st.sampled_from(["tumbling", "hopping", "sliding", "session"]),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
)
def test_is_late_means_every_window_of_the_event_is_closed(kind: str, ts: int, wm: int) -> None:
    """For a session: the event's own one-event session ``[ts, ts + 1)`` (before any gap)."""
    texts = {
        "tumbling": "tumbling:1s",
        "hopping": "hopping:1s/300ms",
        "sliding": "sliding:1s",
        "session": "session:1s",
    }
    definition = parse_window(texts[kind], grace="200ms")
    if isinstance(definition, SessionWindow):
        windows = [(ts, ts + 1)]
    elif isinstance(definition, SlidingWindow):
        windows = [definition.window_ending_at(ts)]
    else:
        windows = definition.windows_for(ts)
    assert definition.is_late(ts, wm) == all(end + 200 <= wm for _, end in windows)


def test_config_picks_repartition_unless_the_key_is_the_partition_key() -> None:
    by_agent = WindowedAggregationConfig(group_id="g", window="tumbling:60s")
    by_session = WindowedAggregationConfig(
        group_id="g", window="tumbling:60s", key_fields=("session_id",)
    )
    assert by_agent.repartitions
    assert by_agent.consumed_topics == ["agent.events", "g.windows.repartition"]
    assert not by_session.repartitions
    assert by_agent.changelog_topic == "g.windows.changelog"
    assert by_agent.transactional_id("agent.events", 3) == "g-agent.events-3"


def test_session_windows_key_by_session_so_they_need_no_repartition() -> None:
    config = WindowedAggregationConfig(group_id="g", window="session:30m", grace="1m")
    assert config.key_fields == ("session_id",)
    assert not config.repartitions
    assert config.definition == SessionWindow(1_800_000, 60_000)
    per_agent = WindowedAggregationConfig(
        group_id="g", window=SessionWindow(60_000), key_fields=("agent_id",)
    )
    assert per_agent.key_fields == ("agent_id",)
    assert per_agent.repartitions
    assert WindowSettings(window="session:5m").key_fields == ("session_id",)
    assert WindowSettings(window="tumbling:5m").key_fields == ("event_type", "agent_id")


def test_session_windows_refuse_an_alert_threshold() -> None:
    with pytest.raises(ValueError, match="fixed size"):
        WindowedAggregationConfig(group_id="g", window="session:5m", alert_threshold=3)
    with pytest.raises(ValueError, match="fixed size"):
        WindowSettings(window="session:5m", alert_threshold=3)


def test_config_refuses_an_output_that_is_also_an_input() -> None:
    with pytest.raises(ValueError, match="would loop"):
        WindowedAggregationConfig(group_id="g", window="tumbling:60s", output_topic="agent.events")


def test_service_settings_accept_the_cli_spellings() -> None:
    settings = WindowSettings(
        window="hopping:60s/10s",
        grace="10s",
        key_fields="event_type, user_id",
        processing_guarantee="at-least-once",
    )
    assert settings.key_fields == ("event_type", "user_id")
    assert settings.processing_guarantee == "at_least_once"
    with pytest.raises(ValueError, match="unknown window kind"):
        WindowSettings(window="daily:1d")


def test_window_results_round_trip_through_avro() -> None:
    codec = WindowAggregateCodec()
    aggregate = WindowAggregate(
        source="g",
        key='["agent_completed","a1"]',
        key_fields={"event_type": "agent_completed", "agent_id": "a1"},
        window="tumbling:1m",
        start_ms=1_700_000_040_000,
        end_ms=1_700_000_100_000,
        final=True,
        values=WindowValues(3, 2, 30, 10, 20, 15.0, 1, 1 / 3, 2, {"tokens": [1, {"a": None}]}),
    )
    data = codec.encode(aggregate)
    assert data[:2] == b"\xc3\x01"
    assert codec.decode(data) == aggregate
    with pytest.raises(DecodeError):
        codec.decode(data[:-3])


def test_every_public_name_is_exported() -> None:
    exported = set(windows.__all__)
    assert all(hasattr(windows, name) for name in exported)
    assert {"WindowProcessor", "parse_window", "Reducer", "WindowAggregateCodec"} <= exported
