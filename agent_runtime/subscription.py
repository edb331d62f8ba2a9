"""What a subscription is, and what a handler did with an event.

Kept apart from :mod:`agent_runtime.event_bus` (which moves events) and
:mod:`agent_runtime._engine` (which calls handlers), so both can use them.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import TypeAlias

from agent_events.agent_runtime.errors import SubscriptionError
from agent_events.agent_runtime.events import (
    EventTypeLike,
    ForeignEventType,
    SystemEvent,
    event_type_key,
)

__all__ = [
    "Delivery",
    "DispatchResult",
    "Handler",
    "HandlerOutcome",
    "Subscription",
    "handler_name",
    "type_label",
]

Handler: TypeAlias = Callable[[SystemEvent], Awaitable[object] | object]
Delivery: TypeAlias = SystemEvent | tuple[SystemEvent, contextvars.Context]
"""A queued event: alone when its publisher's context held no variables, else with that
context (trace span, bound log fields). Alone costs no tuple, so no more objects for the
garbage collector to walk than the events themselves."""


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


class HandlerOutcome:
    """What one handler did with one event in :meth:`EventBus.dispatch`.

    A plain class with slots, not a frozen dataclass: ``dispatch`` makes one per handler
    call, and a frozen dataclass costs four times as much to build. Treat it as read-only.
    """

    __slots__ = ("duration_s", "error", "handler_name", "subscription_id")

    def __init__(
        self,
        subscription_id: str,
        handler_name: str,
        error: BaseException | None,
        duration_s: float,
    ) -> None:
        self.subscription_id = subscription_id
        self.handler_name = handler_name
        self.error = error
        self.duration_s = duration_s

    @property
    def ok(self) -> bool:
        return self.error is None

    def _key(self) -> tuple[str, str, BaseException | None, float]:
        return (self.subscription_id, self.handler_name, self.error, self.duration_s)

    def __repr__(self) -> str:
        return (
            f"HandlerOutcome(subscription_id={self.subscription_id!r}, "
            f"handler_name={self.handler_name!r}, error={self.error!r}, "
            f"duration_s={self.duration_s!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HandlerOutcome):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


class DispatchResult:
    """The outcomes of every handler that matched an event.

    ``ok`` (no handler failed) and ``failures`` are worked out once, when the result is
    made: a consumer reads them for every record. Treat it as read-only.
    """

    __slots__ = ("event", "failures", "ok", "outcomes")

    def __init__(self, event: SystemEvent, outcomes: tuple[HandlerOutcome, ...]) -> None:
        self.event = event
        self.outcomes = outcomes
        failures: tuple[HandlerOutcome, ...] = ()
        for outcome in outcomes:
            if outcome.error is not None:
                failures = tuple([o for o in outcomes if o.error is not None])
                break
        self.failures = failures
        self.ok = not failures

    def __repr__(self) -> str:
        return f"DispatchResult(event={self.event!r}, outcomes={self.outcomes!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DispatchResult):
            return NotImplemented
        return self.event == other.event and self.outcomes == other.outcomes

    def __hash__(self) -> int:
        return hash((self.event, self.outcomes))


class Subscription:
    """One handler subscribed to one event type, with its queue and worker task.

    Built only from a valid type (an ``Enum`` member or a ``ForeignEventType``) and a
    callable, else :class:`SubscriptionError`: a mistake shows at ``subscribe``, not
    at the first event.
    """

    __slots__ = (
        "call",
        "event_type",
        "handler",
        "id",
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
        if isinstance(event_type, Enum):
            event_type_key(event_type)  # registers a custom enum, so decoders resolve it
        elif not isinstance(event_type, ForeignEventType):
            raise SubscriptionError(
                "subscribe needs an event type (an EventType member, EventType.ANY or a "
                f"custom Enum member), got {event_type!r}"
            )
        if not callable(handler):
            raise SubscriptionError(f"handler must be callable, got {handler!r}")
        self.id = sub_id
        self.event_type = event_type
        self.handler = handler
        self.name = handler_name(handler)
        self.timeout = timeout
        # Decided once here so the engine awaits every call the same way and need
        # not inspect each result: an async handler as it is, a sync one adapted.
        self.call: Callable[[SystemEvent], Awaitable[object]] = (
            handler if _is_coroutine_callable(handler) else _awaitable(handler)  # type: ignore[assignment]
        )
        self.queue: asyncio.Queue[Delivery] | None = None
        self.task: asyncio.Task[None] | None = None


def _awaitable(handler: Handler) -> Callable[[SystemEvent], Awaitable[object]]:
    """``handler`` (sync, or returning an awaitable) as a coroutine function."""

    async def call(event: SystemEvent) -> object:
        result = handler(event)
        if inspect.isawaitable(result):
            return await result
        return result

    return call


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
