"""Retry a failing handler with capped exponential backoff (the seed's ``RetryHandler``).

Changes from the seed: exponential backoff with a cap and optional jitter instead
of a linear delay; only ``retry_on`` exceptions are retried; the failed events kept
for inspection are bounded; cancellation is never retried.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable

from agent_events.agent_runtime.errors import ConfigError
from agent_events.agent_runtime.event_bus import Handler, handler_name
from agent_events.agent_runtime.events import SystemEvent
from agent_events.agent_runtime.lru import require_positive_int
from agent_events.consumers.handlers._calling import call_handler

__all__ = ["RetryHandler"]

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class RetryHandler:
    """Runs a handler up to ``max_attempts`` times until it succeeds.

    The wait before retry ``n`` (1-based) is ``delay * backoff ** (n - 1)``, spread by
    ``± jitter`` (a fraction) and capped at ``max_delay``. An exception not in
    ``retry_on`` is raised at once. After the last attempt the event is kept in
    ``failed_events`` (the newest ``max_failed_events``) and the error is raised, so
    a consumer service can dead-letter the record. ``asyncio.CancelledError`` is
    always raised at once, even when ``retry_on`` includes ``BaseException``.
    """

    def __init__(
        self,
        max_attempts: int = 3,
        delay: float = 1.0,
        backoff: float = 2.0,
        max_delay: float = 30.0,
        jitter: float = 0.0,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
        *,
        max_failed_events: int = 1000,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.max_attempts = require_positive_int("max_attempts", max_attempts)
        if delay < 0:
            raise ConfigError(f"delay must be >= 0 seconds, got {delay!r}")
        if backoff < 1:
            raise ConfigError(f"backoff must be >= 1 (1 means a constant delay), got {backoff!r}")
        if max_delay < 0:
            raise ConfigError(f"max_delay must be >= 0 seconds, got {max_delay!r}")
        if not 0 <= jitter <= 1:
            raise ConfigError(f"jitter must be a fraction between 0 and 1, got {jitter!r}")
        retry_types = retry_on if isinstance(retry_on, tuple) else (retry_on,)
        if not retry_types or not all(
            isinstance(t, type) and issubclass(t, BaseException) for t in retry_types
        ):
            raise ConfigError(
                f"retry_on must be an exception class or a non-empty tuple of them, got {retry_on!r}"
            )
        self.delay = delay
        self.backoff = backoff
        self.max_delay = max_delay
        self.jitter = jitter
        self.retry_on: tuple[type[BaseException], ...] = retry_types
        self.failed_events: deque[SystemEvent] = deque(
            maxlen=require_positive_int("max_failed_events", max_failed_events)
        )
        self.failures_total = 0
        self.retries_total = 0
        self._sleep = sleep
        self._random = random.Random()

    def delay_before(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 = the second attempt)."""
        base = self.delay * self.backoff ** (retry - 1)
        if self.jitter:
            base *= 1 + self._random.uniform(-self.jitter, self.jitter)
        return min(base, self.max_delay)

    async def handle_with_retry(self, handler: Handler, event: SystemEvent) -> None:
        """Run ``handler(event)``, retrying as configured; raises the last error."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                await call_handler(handler, event)
                return
            except asyncio.CancelledError:
                raise
            except self.retry_on as exc:
                if attempt == self.max_attempts:
                    self._record_failure(event)
                    raise
                wait = self.delay_before(attempt)
                logger.warning(
                    "handler %s failed on event %s (attempt %d of %d): %s: %s; retrying in %.3fs",
                    handler_name(handler),
                    event.event_id,
                    attempt,
                    self.max_attempts,
                    type(exc).__name__,
                    exc,
                    wait,
                )
                self.retries_total += 1
                await self._sleep(wait)
            except BaseException:
                self._record_failure(event)
                raise

    def _record_failure(self, event: SystemEvent) -> None:
        self.failed_events.append(event)
        self.failures_total += 1

    def wrap(self, handler: Handler) -> Callable[[SystemEvent], Awaitable[None]]:
        """A handler that runs ``handler`` with these retries; subscribe it anywhere."""

        async def retrying(event: SystemEvent) -> None:
            await self.handle_with_retry(handler, event)

        name = f"retry({handler_name(handler)})"
        retrying.__name__ = retrying.__qualname__ = name
        return retrying
