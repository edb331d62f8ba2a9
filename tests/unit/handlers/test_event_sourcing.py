"""Event stores (in memory, SQLite) and EventSourcingHandler."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent_events.agent_runtime.errors import AgentEventsError, ConfigError, InvalidEventError
from agent_events.agent_runtime.event_bus import EventBus, EventType, SystemEvent
from agent_events.agent_runtime.events import event_from_json, event_to_json
from agent_events.consumers.handlers import (
    EventSourcingHandler,
    EventStore,
    InMemoryEventStore,
    SessionProjection,
    SQLiteEventStore,
)
from agent_events.schemas import decode_event, encode_event

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def event(
    session: str = "s1", event_type: EventType = EventType.AGENT_STARTED, seconds: int = 0
) -> SystemEvent:
    return SystemEvent(
        event_type=event_type,
        agent_id="chatbot",
        user_id="u1",
        session_id=session,
        timestamp=T0 + timedelta(seconds=seconds),
        metadata={"nested": {"list": [1, 2.5, None, "x"]}},
        error_message="boom" if event_type is EventType.ERROR_OCCURRED else None,
    )


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventStore]:
    if request.param == "memory":
        yield InMemoryEventStore()
    else:
        async with SQLiteEventStore(tmp_path / "events.db") as sqlite_store:
            yield sqlite_store


async def test_append_is_idempotent_on_event_id(store: EventStore) -> None:
    e = event()
    assert await store.append(e) is True
    assert await store.append(e.model_copy()) is False
    assert await store.count() == 1


async def test_read_returns_events_in_insertion_order_with_all_fields(store: EventStore) -> None:
    events = [event(seconds=30), event(seconds=10), event(seconds=20)]
    for e in events:
        await store.append(e)
    assert await store.read() == events


async def test_read_filters_by_session_and_pages_with_an_after_cursor(store: EventStore) -> None:
    events = [event(session=f"s{i % 2}", seconds=i) for i in range(6)]
    for e in events:
        await store.append(e)
    assert await store.read(session_id="s1") == events[1::2]
    first_page = await store.read(limit=2)
    assert first_page == events[:2]
    assert await store.read(after=first_page[-1].event_id, limit=2) == events[2:4]
    assert await store.read(session_id="s0", after=events[1].event_id) == [events[2], events[4]]


async def test_reading_after_an_unknown_event_is_an_error(store: EventStore) -> None:
    with pytest.raises(ConfigError, match="not in the store"):
        await store.read(after=event().event_id)


async def test_sqlite_store_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    events = [event(seconds=i) for i in range(3)]
    async with SQLiteEventStore(path) as first:
        for e in events:
            await first.append(e)
    async with SQLiteEventStore(path) as second:
        assert await second.read() == events
        assert await second.append(events[0]) is False
        assert await second.count() == 3


async def test_sqlite_store_used_before_open_says_how_to_open_it(tmp_path: Path) -> None:
    with pytest.raises(AgentEventsError, match="async with"):
        await SQLiteEventStore(tmp_path / "x.db").count()


async def test_in_memory_store_keeps_the_newest_max_events() -> None:
    store = InMemoryEventStore(max_events=2)
    events = [event(seconds=i) for i in range(3)]
    for e in events:
        await store.append(e)
    assert await store.read() == events[1:]


async def test_handler_on_a_bus_stores_events_and_projects_session_state() -> None:
    store = InMemoryEventStore()
    handler = EventSourcingHandler(store)
    async with EventBus() as bus:
        await bus.subscribe(EventType.ANY, handler)
        await bus.publish(event(event_type=EventType.SESSION_CREATED, seconds=0))
        await bus.publish(event(event_type=EventType.CHECKPOINT_SAVED, seconds=1))
        await bus.publish(event(event_type=EventType.ERROR_OCCURRED, seconds=2))
        await bus.join()
    assert await store.count() == 3
    assert isinstance(handler.projector, SessionProjection)
    state = handler.projector.get("s1")
    assert state is not None
    assert (state.status, state.event_count, state.checkpoints, state.last_error) == (
        "failed",
        3,
        1,
        "boom",
    )


async def test_redelivered_event_does_not_change_the_projection() -> None:
    handler = EventSourcingHandler(InMemoryEventStore())
    e = event()
    assert await handler.handle(e) is True
    assert await handler.handle(e) is False
    projection = handler.projector
    assert isinstance(projection, SessionProjection)
    state = projection.get("s1")
    assert state is not None
    assert state.event_count == 1


async def test_failed_projection_is_rebuilt_from_the_store_on_redelivery() -> None:
    class FlakyProjection(SessionProjection):
        fail_next = True

        async def apply(self, e: SystemEvent) -> None:
            if self.fail_next:
                self.fail_next = False
                raise RuntimeError("projection failed")
            await super().apply(e)

    projection = FlakyProjection()
    handler = EventSourcingHandler(InMemoryEventStore(), projection)
    e = event()
    with pytest.raises(RuntimeError):
        await handler.handle(e)
    await handler.handle(e)  # the consumer's retry: already stored, projection repaired
    state = projection.get("s1")
    assert state is not None
    assert state.event_count == 1


async def test_rebuild_replays_the_whole_store_in_pages() -> None:
    store = InMemoryEventStore()
    for i in range(5):
        await store.append(event(seconds=i))
    handler = EventSourcingHandler(store, rebuild_page_size=2)
    assert await handler.rebuild() == 5
    projection = handler.projector
    assert isinstance(projection, SessionProjection)
    state = projection.get("s1")
    assert state is not None
    assert state.event_count == 5


def _nested(depth: int) -> dict[str, Any]:
    metadata: dict[str, Any] = {"leaf": True}
    for _ in range(depth):
        metadata = {"x": metadata}
    return metadata


async def test_an_event_with_deeply_nested_metadata_that_decoded_is_stored_and_read_back(
    tmp_path: Path,
) -> None:
    """Deeper than pydantic serialises (~255 levels), as another language's producer may write."""
    base = event("deep")
    written = encode_event(SystemEvent.model_construct(**{**dict(base), "metadata": _nested(400)}))
    decoded = decode_event(written)
    async with SQLiteEventStore(tmp_path / "events.db") as store:
        assert await store.append(decoded)
        (stored,) = await store.read()
    assert stored.metadata == _nested(400)
    assert stored.event_id == base.event_id


def test_event_json_round_trips_every_field() -> None:
    original = event("s1", EventType.AGENT_COMPLETED)
    assert event_from_json(event_to_json(original)) == original


@pytest.mark.parametrize("text", ["", "[]", '{"metadata": []}', '{"agent_id": 1}'])
def test_event_from_json_refuses_what_is_not_an_event(text: str) -> None:
    with pytest.raises(InvalidEventError):
        event_from_json(text)
