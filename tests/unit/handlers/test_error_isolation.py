"""safe_handler / ErrorIsolatedHandler: log, count, never raise (except cancellation)."""

from __future__ import annotations

import asyncio
import inspect
import logging

import pytest

from agent_events.agent_runtime.event_bus import EventType, SystemEvent
from agent_events.consumers.handlers import ErrorIsolatedHandler, EventRouter, safe_handler


def event() -> SystemEvent:
    return SystemEvent(event_type=EventType.AGENT_STARTED, agent_id="a")


async def broken(e: SystemEvent) -> None:
    raise ValueError("broken handler")


def test_safe_handler_returns_a_handler_not_a_coroutine() -> None:
    wrapped = safe_handler(broken)
    assert not inspect.iscoroutine(wrapped)
    assert callable(wrapped)


async def test_errors_are_logged_with_traceback_and_counted_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrapped = ErrorIsolatedHandler(broken)
    await wrapped(event())
    await wrapped(event())
    assert wrapped.error_count == 2
    assert isinstance(wrapped.last_error, ValueError)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert errors[0].exc_info is not None


async def test_cancellation_still_propagates() -> None:
    async def cancelled(e: SystemEvent) -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await safe_handler(cancelled)(event())


async def test_isolated_route_handler_does_not_fail_the_router() -> None:
    router = EventRouter()
    router.add_route(EventType.AGENT_STARTED, safe_handler(broken))
    assert await router.dispatch(event()) == 1
