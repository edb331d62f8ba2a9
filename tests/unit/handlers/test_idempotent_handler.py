"""IdempotentHandler: once per event_id, retry after failure, concurrent duplicates."""

from __future__ import annotations

import asyncio

import pytest

from agent_events.agent_runtime.event_bus import EventBus, EventType, SystemEvent
from agent_events.consumers.handlers import IdempotentHandler, SeenEvents


def event() -> SystemEvent:
    return SystemEvent(event_type=EventType.AGENT_STARTED, agent_id="a")


class Counting:
    def __init__(self, failures: int = 0) -> None:
        self.calls = 0
        self.failures = failures
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, e: SystemEvent) -> None:
        self.calls += 1
        await self.release.wait()
        if self.calls <= self.failures:
            raise RuntimeError("failed")


async def test_redelivered_event_runs_the_handler_once() -> None:
    inner = Counting()
    handler = IdempotentHandler(inner)
    e = event()
    await handler(e)
    await handler(e.model_copy())
    assert (inner.calls, handler.duplicates) == (1, 1)


async def test_failed_event_runs_again_on_redelivery() -> None:
    inner = Counting(failures=1)
    handler = IdempotentHandler(inner)
    e = event()
    with pytest.raises(RuntimeError):
        await handler(e)
    await handler(e)
    assert inner.calls == 2


async def test_concurrent_duplicates_run_the_handler_once() -> None:
    inner = Counting()
    inner.release.clear()
    handler = IdempotentHandler(inner)
    e = event()
    async with asyncio.timeout(5):
        first = asyncio.create_task(handler(e))
        second = asyncio.create_task(handler(e))
        await asyncio.sleep(0)
        inner.release.set()
        await asyncio.gather(first, second)
    assert (inner.calls, handler.duplicates, handler.in_flight) == (1, 1, 0)


async def test_concurrent_duplicate_runs_the_handler_when_the_first_delivery_failed() -> None:
    inner = Counting(failures=1)
    inner.release.clear()
    handler = IdempotentHandler(inner)
    e = event()
    async with asyncio.timeout(5):
        first = asyncio.create_task(handler(e))
        second = asyncio.create_task(handler(e))
        await asyncio.sleep(0)
        inner.release.set()
        results = await asyncio.gather(first, second, return_exceptions=True)
    assert isinstance(results[0], RuntimeError)
    assert results[1] is None
    assert inner.calls == 2


def test_seen_events_forget_the_oldest_beyond_the_cap() -> None:
    seen = SeenEvents(max_remembered=2)
    ids = [event().event_id for _ in range(3)]
    for event_id in ids:
        seen.add(event_id)
    assert len(seen) == 2
    assert ids[0] not in seen
    assert ids[2] in seen


async def test_idempotent_handler_on_a_bus_ignores_a_republished_event() -> None:
    inner = Counting()
    e = event()
    async with EventBus() as bus:
        await bus.subscribe(EventType.ANY, IdempotentHandler(inner))
        await bus.publish(e)
        await bus.publish(e)
        await bus.join()
    assert inner.calls == 1
