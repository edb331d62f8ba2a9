"""What a subscription is, and what a handler did with an event.

Kept apart from :mod:`agent_runtime.event_bus` so the bus module holds only the
machinery that moves events (queues, workers, the timeout watchdog).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeAlias

from agent_events.agent_runtime.events import EventTypeLike, SystemEvent, event_type_key

__all__ = [
    "DispatchResult",
    "Handler",
    "HandlerOutcome",
    "Subscription",
    "handler_name",
    "type_label",
]

Handler: TypeAlias = Callable[[SystemEvent], Awaitable[object] | object]


def handler_name(handler: object) -> str:
    """A readable, stable name for a handler: ``Class.method`` or the function name."""
    name = getattr(handler, "__qualname__", None)
    if isinstance(name, str):
        return name
    return type(handler).__qualname__


def type_label(event_type: EventTypeLike) -> str:
    """The label an event type has in metrics and logs: ``value`` or ``namespace:value``."""
    namespace, value = event_type_key(event_type)
    return f"{namespace}:{value}" if namespace else value


@dataclass(frozen=True, slots=True)
class HandlerOutcome:
    """What one handler did with one event in :meth:`EventBus.dispatch`."""

    subscription_id: str
    handler_name: str
    error: BaseException | None
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class DispatchResult:
    """The outcomes of every handler that matched an event."""

    event: SystemEvent
    outcomes: tuple[HandlerOutcome, ...]

    @property
    def ok(self) -> bool:
        return all(o.error is None for o in self.outcomes)

    @property
    def failures(self) -> tuple[HandlerOutcome, ...]:
        return tuple(o for o in self.outcomes if o.error is not None)


class Subscription:
    """One handler subscribed to one event type, with its queue and worker task.

    ``deadline`` is the ``time.perf_counter()`` time by which the worker's current
    call must finish (``None`` while idle); ``expired`` marks a call the bus's
    watchdog cancelled.
    """

    __slots__ = (
        "deadline",
        "event_type",
        "expired",
        "handler",
        "id",
        "is_async",
        "name",
        "queue",
        "task",
        "timeout",
    )

    def __init__(
        self,
        sub_id: str,
        event_type: EventTypeLike,
        handler: Handler,
        timeout: float | None,
    ) -> None:
        self.id = sub_id
        self.event_type = event_type
        self.handler = handler
        self.name = handler_name(handler)
        self.timeout = timeout
        # Decided once here so the worker need not inspect every result.
        self.is_async = _is_coroutine_callable(handler)
        self.queue: asyncio.Queue[SystemEvent] | None = None
        self.task: asyncio.Task[None] | None = None
        self.deadline: float | None = None
        self.expired = False


def _is_coroutine_callable(handler: object) -> bool:
    """Whether calling ``handler`` always returns a coroutine (``async def`` or its ``__call__``)."""
    if inspect.iscoroutinefunction(handler):
        return True
    # Python calls the class's __call__, so that is the one to look at.
    for klass in type(handler).__mro__:
        call = klass.__dict__.get("__call__")
        if call is not None:
            return inspect.iscoroutinefunction(call)
    return False
