"""FilteredHandler: sync and async conditions."""

from __future__ import annotations

from agent_events.agent_runtime.event_bus import EventBus, EventType, SystemEvent
from agent_events.consumers.handlers import FilteredHandler


def event(tier: str) -> SystemEvent:
    return SystemEvent(event_type=EventType.AGENT_STARTED, agent_id="a", metadata={"tier": tier})


async def test_only_matching_events_reach_the_handler_on_a_bus() -> None:
    seen: list[str] = []

    async def premium_user_handler(e: SystemEvent) -> None:
        seen.append(str(e.metadata["tier"]))

    filtered = FilteredHandler(
        condition_func=lambda e: e.metadata.get("tier") == "premium",
        actual_handler=premium_user_handler,
    )
    async with EventBus() as bus:
        await bus.subscribe(EventType.ANY, filtered)
        for tier in ("free", "premium", "free", "premium"):
            await bus.publish(event(tier))
        await bus.join()
    assert seen == ["premium", "premium"]
    assert (filtered.passed, filtered.skipped) == (2, 2)


async def test_async_condition_is_awaited_not_taken_as_truthy() -> None:
    seen: list[SystemEvent] = []

    async def is_premium(e: SystemEvent) -> bool:
        return e.metadata.get("tier") == "premium"

    async def record(e: SystemEvent) -> None:
        seen.append(e)

    handler = FilteredHandler(is_premium, record)
    await handler(event("free"))
    assert seen == []


async def test_sync_inner_handler_is_supported() -> None:
    seen: list[SystemEvent] = []
    await FilteredHandler(lambda e: True, seen.append)(event("free"))
    assert len(seen) == 1
