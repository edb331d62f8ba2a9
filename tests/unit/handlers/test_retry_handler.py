"""RetryHandler: capped exponential backoff, bounded failures, no retry of cancellation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agent_events.agent_runtime.errors import ConfigError
from agent_events.agent_runtime.event_bus import EventBus, EventType, SystemEvent
from agent_events.consumers.handlers import RetryHandler


def event() -> SystemEvent:
    return SystemEvent(event_type=EventType.AGENT_STARTED, agent_id="a")


class Sleeps:
    """Records the delays instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class FailsTimes:
    def __init__(self, failures: int, error: BaseException | None = None) -> None:
        self.failures = failures
        self.calls = 0
        self.error = error if error is not None else ConnectionError("transient")

    async def __call__(self, e: SystemEvent) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error


async def test_transient_failures_are_retried_until_success() -> None:
    handler = FailsTimes(2)
    retry = RetryHandler(max_attempts=3, sleep=Sleeps())
    await retry.handle_with_retry(handler, event())
    assert handler.calls == 3
    assert list(retry.failed_events) == []


async def test_backoff_is_exponential_and_capped_at_max_delay() -> None:
    sleeps = Sleeps()
    retry = RetryHandler(max_attempts=5, delay=1.0, backoff=2.0, max_delay=3.0, sleep=sleeps)
    with pytest.raises(ConnectionError):
        await retry.handle_with_retry(FailsTimes(10), event())
    assert sleeps.delays == [1.0, 2.0, 3.0, 3.0]


def test_jitter_stays_within_its_fraction() -> None:
    retry = RetryHandler(delay=1.0, backoff=1.0, jitter=0.2)
    delays = [retry.delay_before(1) for _ in range(200)]
    assert all(0.8 <= d <= 1.2 for d in delays)
    assert len(set(delays)) > 1


async def test_exhausted_event_is_kept_and_the_last_error_raised() -> None:
    retry = RetryHandler(max_attempts=2, sleep=Sleeps())
    e = event()
    with pytest.raises(ConnectionError):
        await retry.handle_with_retry(FailsTimes(5), e)
    assert list(retry.failed_events) == [e]
    assert retry.failures_total == 1


async def test_failed_events_kept_are_bounded() -> None:
    retry = RetryHandler(max_attempts=1, max_failed_events=3, sleep=Sleeps())
    for _ in range(10):
        with pytest.raises(ConnectionError):
            await retry.handle_with_retry(FailsTimes(1), event())
    assert len(retry.failed_events) == 3
    assert retry.failures_total == 10


async def test_an_error_not_in_retry_on_is_raised_at_once() -> None:
    handler = FailsTimes(1, ValueError("bad input"))
    retry = RetryHandler(retry_on=ConnectionError, sleep=Sleeps())
    with pytest.raises(ValueError, match="bad input"):
        await retry.handle_with_retry(handler, event())
    assert handler.calls == 1


async def test_cancellation_is_never_retried_even_when_retry_on_is_base_exception() -> None:
    handler = FailsTimes(5, asyncio.CancelledError())
    retry = RetryHandler(retry_on=BaseException, sleep=Sleeps())
    with pytest.raises(asyncio.CancelledError):
        await retry.handle_with_retry(handler, event())
    assert handler.calls == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"delay": -1},
        {"backoff": 0.5},
        {"max_delay": -1},
        {"jitter": 1.5},
        {"retry_on": ()},
        {"retry_on": (str,)},
    ],
)
def test_invalid_arguments_raise_config_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        RetryHandler(**kwargs)


async def test_wrapped_handler_retries_on_a_bus() -> None:
    handler = FailsTimes(2)
    retry = RetryHandler(max_attempts=3, sleep=Sleeps())
    wrapped = retry.wrap(handler)
    async with EventBus() as bus:
        await bus.subscribe(EventType.ANY, wrapped)
        await bus.publish(event())
        await bus.join()
    assert handler.calls == 3
    assert wrapped.__qualname__ == "retry(FailsTimes)"
