"""ConcurrencyLimitedHandler and BackgroundHandler: bounded concurrency, owned tasks."""

from __future__ import annotations

import asyncio
import logging

import pytest

from agent_events.agent_runtime.errors import BusClosed
from agent_events.agent_runtime.event_bus import EventBus, EventType, SystemEvent
from agent_events.consumers.handlers import BackgroundHandler, ConcurrencyLimitedHandler


def event() -> SystemEvent:
    return SystemEvent(event_type=EventType.AGENT_STARTED, agent_id="a")


async def spin(turns: int = 20) -> None:
    """Let every ready task run a few steps (not a wait for time)."""
    for _ in range(turns):
        await asyncio.sleep(0)


class Gated:
    """A handler that blocks until released, tracking its peak concurrency."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.running = 0
        self.peak = 0
        self.done = 0

    async def __call__(self, e: SystemEvent) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        self.done += 1


async def test_limited_handler_never_runs_more_than_max_concurrent() -> None:
    gated = Gated()
    limited = ConcurrencyLimitedHandler(gated, max_concurrent=3)
    async with asyncio.timeout(5), asyncio.TaskGroup() as group:
        for _ in range(10):
            group.create_task(limited(event()))
        await spin()
        assert limited.in_flight == 3
        gated.release.set()
    assert (gated.peak, gated.done) == (3, 10)


async def test_limited_handler_propagates_errors() -> None:
    async def broken(e: SystemEvent) -> None:
        raise RuntimeError("down")

    with pytest.raises(RuntimeError):
        await ConcurrencyLimitedHandler(broken).handle_event(event())


async def test_background_handler_returns_before_the_work_finishes() -> None:
    gated = Gated()
    async with asyncio.timeout(5), BackgroundHandler(gated) as background:
        await background(event())
        assert background.in_flight == 1
        assert gated.done == 0
        gated.release.set()
        await background.drain()
        assert (background.in_flight, background.completed, gated.done) == (0, 1, 1)


async def test_background_handler_makes_callers_wait_when_all_slots_are_busy() -> None:
    gated = Gated()
    async with asyncio.timeout(5), BackgroundHandler(gated, max_concurrent=1) as background:
        await background(event())
        second = asyncio.create_task(background(event()))
        await spin()
        assert not second.done()
        gated.release.set()
        await second
        await background.drain()
    assert (gated.peak, gated.done) == (1, 2)


async def test_background_errors_are_logged_and_counted_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(e: SystemEvent) -> None:
        raise RuntimeError("down")

    async with asyncio.timeout(5), BackgroundHandler(broken) as background:
        await background(event())
        await background.drain()
    assert background.failed == 1
    assert isinstance(background.recent_errors[0], RuntimeError)
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.exc_info is not None


async def test_aclose_waits_for_running_work_and_refuses_new_events() -> None:
    gated = Gated()
    background = BackgroundHandler(gated)
    await background(event())
    async with asyncio.timeout(5):
        closing = asyncio.create_task(background.aclose())
        await spin()
        assert not closing.done()
        gated.release.set()
        await closing
    assert gated.done == 1
    with pytest.raises(BusClosed):
        await background(event())


async def test_aclose_cancels_work_still_running_after_the_drain_timeout() -> None:
    gated = Gated()
    background = BackgroundHandler(gated)
    await background(event())
    async with asyncio.timeout(5):
        await background.aclose(drain_timeout=0.01)
    assert (background.in_flight, gated.done, gated.running) == (0, 0, 0)


async def test_background_handler_on_a_bus_finishes_all_work_on_close() -> None:
    done: list[int] = []

    async def work(e: SystemEvent) -> None:
        await asyncio.sleep(0)
        done.append(1)

    async with (
        asyncio.timeout(5),
        BackgroundHandler(work, max_concurrent=2) as background,
        EventBus() as bus,
    ):
        await bus.subscribe(EventType.ANY, background)
        for _ in range(20):
            await bus.publish(event())
        await bus.join()
    assert len(done) == 20
