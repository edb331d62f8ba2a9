"""Middlewares: steps that prepare an :class:`AgentContext` before the LLM call.

A middleware is a *before hook*: an async callable taking the context, returning
nothing, optionally with a ``name``. Hooks (rather than ``call_next`` wrappers) keep
the seed's event order exact: every ``MIDDLEWARE_EXECUTED`` is published before the
LLM runs, and each one's duration is its own, not that of everything after it.
Work after the LLM call belongs in an event handler for ``AGENT_COMPLETED``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias, runtime_checkable

from agent_events.agent_runtime.errors import ConfigError
from agent_events.agent_runtime.event_bus import handler_name
from agent_events.agent_runtime.orchestration.context import AgentContext

__all__ = [
    "FailedMiddleware",
    "Middleware",
    "MiddlewareFunc",
    "MiddlewareObserver",
    "MiddlewarePipeline",
    "middleware_name",
]


@runtime_checkable
class Middleware(Protocol):
    """A named before-hook; it may change the context, and raising aborts the execution."""

    name: str

    async def __call__(self, context: AgentContext) -> None: ...


MiddlewareFunc: TypeAlias = Callable[[AgentContext], Awaitable[None]]
"""What the executor accepts: a :class:`Middleware` or a plain ``async def f(context)``."""


def middleware_name(middleware: MiddlewareFunc) -> str:
    """Its ``name`` attribute when it has a string one, else its qualified name."""
    name = getattr(middleware, "name", None)
    return name if isinstance(name, str) and name else handler_name(middleware)


class MiddlewareObserver(Protocol):
    """Told about each middleware as it finishes; the executor publishes events from it."""

    async def middleware_executed(self, name: str, duration_ms: float) -> None: ...

    async def middleware_failed(self, name: str, duration_ms: float, error: Exception) -> None: ...


@dataclass(frozen=True, slots=True)
class FailedMiddleware:
    """The middleware that raised, and what it raised."""

    name: str
    error: Exception


class MiddlewarePipeline:
    """Runs middlewares in order, one at a time, stopping at the first that raises."""

    def __init__(self, middlewares: Sequence[MiddlewareFunc] = ()) -> None:
        steps: list[tuple[str, MiddlewareFunc]] = []
        for middleware in middlewares:
            if not callable(middleware):
                raise ConfigError(
                    "a middleware must be an async callable taking the AgentContext, "
                    f"got {middleware!r}"
                )
            steps.append((middleware_name(middleware), middleware))
        self._steps = tuple(steps)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self._steps)

    async def run(
        self, context: AgentContext, observer: MiddlewareObserver
    ) -> FailedMiddleware | None:
        """Run every middleware on ``context``; the failure, or ``None`` if all succeeded.

        Steps, per middleware: 1. call it; 2. tell the observer it executed (or failed,
        with its exception); 3. after a failure, stop: later middlewares do not run.
        Cancellation is not a failure and propagates.
        """
        for name, middleware in self._steps:
            started = time.perf_counter()
            try:
                await middleware(context)
            except Exception as exc:  # noqa: BLE001 (a user's middleware may raise anything)
                await observer.middleware_failed(name, _elapsed_ms(started), exc)
                return FailedMiddleware(name, exc)
            await observer.middleware_executed(name, _elapsed_ms(started))
        return None


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
