"""Behaviour of SessionManager: session and checkpoint events, expiry, bounds."""

from __future__ import annotations

import pytest

from agent_events.agent_runtime.errors import ConfigError, SessionNotFound
from agent_events.agent_runtime.event_bus import EventBus, EventType, SystemEvent
from agent_events.agent_runtime.orchestration import SessionManager


class ListPublisher:
    """Records what would go on the bus, in order."""

    def __init__(self) -> None:
        self.events: list[SystemEvent] = []

    async def publish(self, event: SystemEvent) -> None:
        self.events.append(event)

    @property
    def types(self) -> list[EventType]:
        return [e.event_type for e in self.events]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def bus() -> ListPublisher:
    return ListPublisher()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def manager(bus: ListPublisher, clock: FakeClock) -> SessionManager:
    return SessionManager(bus, ttl=60, max_checkpoints=2, clock=clock)


async def test_create_session_publishes_session_created_with_its_string_id(
    manager: SessionManager, bus: ListPublisher
) -> None:
    session = await manager.create_session("chatbot", "user_123")
    assert isinstance(session.session_id, str)
    (event,) = bus.events
    assert event.event_type is EventType.SESSION_CREATED
    assert (event.agent_id, event.user_id, event.session_id) == (
        "chatbot",
        "user_123",
        session.session_id,
    )


async def test_create_session_keeps_a_given_id(manager: SessionManager) -> None:
    session = await manager.create_session("chatbot", session_id="sess_abc")
    assert manager.get_session("sess_abc") is session


async def test_create_session_refuses_an_id_in_use(manager: SessionManager) -> None:
    await manager.create_session("chatbot", session_id="sess_abc")
    with pytest.raises(ConfigError, match="already exists"):
        await manager.create_session("chatbot", session_id="sess_abc")


async def test_expire_publishes_session_expired_and_forgets_the_session(
    manager: SessionManager, bus: ListPublisher
) -> None:
    session = await manager.create_session("chatbot", session_id="s1")
    assert await manager.expire("s1")
    assert manager.get_session("s1") is None
    expired = bus.events[-1]
    assert expired.event_type is EventType.SESSION_EXPIRED
    assert (expired.session_id, expired.metadata["reason"]) == (session.session_id, "expired")


async def test_expire_of_an_unknown_session_returns_false_and_publishes_nothing(
    manager: SessionManager, bus: ListPublisher
) -> None:
    assert not await manager.expire("nope")
    assert bus.events == []


async def test_expire_idle_expires_only_sessions_idle_for_the_ttl(
    manager: SessionManager, bus: ListPublisher, clock: FakeClock
) -> None:
    await manager.create_session("a", session_id="old")
    await manager.create_session("a", session_id="busy")
    clock.now += 30
    manager.touch("busy")
    clock.now += 30
    assert await manager.expire_idle() == ["old"]
    assert manager.get_session("busy") is not None
    expired = bus.events[-1]
    assert (expired.event_type, expired.session_id, expired.metadata["reason"]) == (
        EventType.SESSION_EXPIRED,
        "old",
        "idle",
    )


async def test_save_checkpoint_publishes_checkpoint_saved_with_its_id(
    manager: SessionManager, bus: ListPublisher
) -> None:
    await manager.create_session("a", session_id="s1")
    checkpoint_id = await manager.save_checkpoint("s1", {"step": 1})
    saved = bus.events[-1]
    assert saved.event_type is EventType.CHECKPOINT_SAVED
    assert (saved.session_id, saved.metadata["checkpoint_id"]) == ("s1", checkpoint_id)


async def test_restore_checkpoint_returns_the_saved_state_and_publishes_restored(
    manager: SessionManager, bus: ListPublisher
) -> None:
    await manager.create_session("a", session_id="s1")
    checkpoint_id = await manager.save_checkpoint("s1", {"messages": ["hi"], "step": 1})
    state = await manager.restore_checkpoint("s1", checkpoint_id)
    assert state == {"messages": ["hi"], "step": 1}
    restored = bus.events[-1]
    assert (restored.event_type, restored.metadata["checkpoint_id"]) == (
        EventType.CHECKPOINT_RESTORED,
        checkpoint_id,
    )


async def test_restore_without_an_id_returns_the_latest_checkpoint(
    manager: SessionManager,
) -> None:
    await manager.create_session("a", session_id="s1")
    await manager.save_checkpoint("s1", {"step": 1})
    await manager.save_checkpoint("s1", {"step": 2})
    assert await manager.restore_checkpoint("s1") == {"step": 2}


async def test_a_checkpoint_is_a_copy_unaffected_by_later_changes(
    manager: SessionManager,
) -> None:
    await manager.create_session("a", session_id="s1")
    state: dict[str, list[str]] = {"messages": ["hi"]}
    await manager.save_checkpoint("s1", state)  # type: ignore[arg-type]
    state["messages"].append("changed")
    restored = await manager.restore_checkpoint("s1")
    restored["messages"].append("changed too")  # type: ignore[union-attr]
    assert await manager.restore_checkpoint("s1") == {"messages": ["hi"]}


async def test_only_the_last_max_checkpoints_are_kept(manager: SessionManager) -> None:
    await manager.create_session("a", session_id="s1")
    first = await manager.save_checkpoint("s1", {"step": 1})
    await manager.save_checkpoint("s1", {"step": 2})
    await manager.save_checkpoint("s1", {"step": 3})
    assert [c.state["step"] for c in manager.list_checkpoints("s1")] == [2, 3]
    with pytest.raises(SessionNotFound, match="only the last 2"):
        await manager.restore_checkpoint("s1", first)


async def test_expiring_a_session_drops_its_checkpoints(manager: SessionManager) -> None:
    await manager.create_session("a", session_id="s1")
    await manager.save_checkpoint("s1", {"step": 1})
    await manager.expire("s1")
    with pytest.raises(SessionNotFound, match="not live"):
        await manager.restore_checkpoint("s1")


async def test_save_checkpoint_for_an_unknown_session_raises_session_not_found(
    manager: SessionManager,
) -> None:
    with pytest.raises(SessionNotFound, match="create_session"):
        await manager.save_checkpoint("nope", {"step": 1})


async def test_checkpoint_state_must_be_json(manager: SessionManager) -> None:
    await manager.create_session("a", session_id="s1")
    with pytest.raises(ConfigError, match="JSON"):
        await manager.save_checkpoint("s1", {"obj": object()})  # type: ignore[dict-item]


async def test_a_full_manager_expires_the_least_recently_active_session(
    bus: ListPublisher, clock: FakeClock
) -> None:
    manager = SessionManager(bus, max_sessions=2, clock=clock)
    await manager.create_session("a", session_id="s1")
    await manager.create_session("a", session_id="s2")
    manager.touch("s1")
    await manager.create_session("a", session_id="s3")
    assert manager.get_session("s2") is None
    assert len(manager) == 2
    assert bus.types[-2:] == [EventType.SESSION_EXPIRED, EventType.SESSION_CREATED]
    assert (bus.events[-2].session_id, bus.events[-2].metadata["reason"]) == ("s2", "capacity")


async def test_without_a_bus_sessions_and_checkpoints_still_work() -> None:
    manager = SessionManager()
    session = await manager.create_session("a")
    await manager.save_checkpoint(session.session_id, {"step": 1})
    assert await manager.restore_checkpoint(session.session_id) == {"step": 1}


def test_session_manager_rejects_a_non_positive_ttl() -> None:
    with pytest.raises(ConfigError, match="ttl"):
        SessionManager(ttl=0)


async def test_session_events_reach_subscribers_of_a_real_event_bus() -> None:
    seen: list[EventType] = []

    async def record(event: SystemEvent) -> None:
        seen.append(event.event_type)

    async with EventBus() as event_bus:
        await event_bus.subscribe(EventType.ANY, record)
        manager = SessionManager(event_bus)
        session = await manager.create_session("chatbot")
        checkpoint_id = await manager.save_checkpoint(session.session_id, {"step": 1})
        await manager.restore_checkpoint(session.session_id, checkpoint_id)
        await manager.expire(session.session_id)
        await event_bus.join()
    assert seen == [
        EventType.SESSION_CREATED,
        EventType.CHECKPOINT_SAVED,
        EventType.CHECKPOINT_RESTORED,
        EventType.SESSION_EXPIRED,
    ]
