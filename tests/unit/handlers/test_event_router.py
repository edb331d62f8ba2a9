"""EventRouter: every route handler runs; failures are raised together afterwards."""

from __future__ import annotations

import asyncio

import pytest

from agent_events.agent_runtime.errors import SubscriptionError
from agent_events.agent_runtime.event_bus import EventBus, EventType, SystemEvent
from agent_events.consumers.handlers import EventRouter


def event(event_type: EventType) -> SystemEvent:
    return SystemEvent(event_type=event_type, agent_id="a")


async def test_router_on_a_bus_sends_each_type_to_its_handlers() -> None:
    router = EventRouter()
    seen: list[str] = []

    @router.route(EventType.AGENT_STARTED)
    async def handle_started(e: SystemEvent) -> None:
        seen.append("started")

    @router.route(EventType.AGENT_COMPLETED)
    async def handle_completed(e: SystemEvent) -> None:
        seen.append("completed")

    async with EventBus() as bus:
        await bus.subscribe(EventType.ANY, router.dispatch)
        await bus.publish(event(EventType.AGENT_STARTED))
        await bus.publish(event(EventType.AGENT_COMPLETED))
        await bus.publish(event(EventType.SESSION_CREATED))
        await bus.join()
    assert seen == ["started", "completed"]


async def test_any_routes_run_for_every_event_after_the_specific_ones() -> None:
    router = EventRouter()
    seen: list[str] = []
    router.add_route(EventType.ANY, lambda e: seen.append("any"))
    router.add_route(EventType.AGENT_STARTED, lambda e: seen.append("started"))
    assert await router.dispatch(event(EventType.AGENT_STARTED)) == 2
    assert seen == ["started", "any"]


async def test_a_failing_handler_does_not_stop_the_others_and_all_errors_are_raised() -> None:
    router = EventRouter()
    ran: list[str] = []

    @router.route(EventType.AGENT_STARTED)
    async def first(e: SystemEvent) -> None:
        raise ValueError("first failed")

    @router.route(EventType.AGENT_STARTED)
    async def second(e: SystemEvent) -> None:
        ran.append("second")

    @router.route(EventType.AGENT_STARTED)
    async def third(e: SystemEvent) -> None:
        raise KeyError("third failed")

    with pytest.raises(ExceptionGroup) as caught:
        await router(event(EventType.AGENT_STARTED))
    assert ran == ["second"]
    assert [type(e) for e in caught.value.exceptions] == [ValueError, KeyError]
    assert "2 of 3 route handlers failed" in str(caught.value)


async def test_cancellation_of_a_route_handler_is_not_collected() -> None:
    router = EventRouter()

    @router.route(EventType.AGENT_STARTED)
    async def cancelled(e: SystemEvent) -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await router.dispatch(event(EventType.AGENT_STARTED))


def test_routing_something_that_is_not_an_event_type_is_rejected() -> None:
    with pytest.raises(SubscriptionError):
        EventRouter().add_route("agent_started", print)  # type: ignore[arg-type]
