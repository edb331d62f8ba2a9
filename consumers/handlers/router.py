"""Route events to handlers by type (the seed's ``EventRouter``).

Fix of the seed: it awaited route handlers one by one and the first that raised
stopped the rest. Here every matching handler runs; failures are collected and
raised together afterwards, so a consumer service retries or dead-letters the
record while the other handlers still did their work.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import TypeVar

from agent_events.agent_runtime.errors import SubscriptionError
from agent_events.agent_runtime.event_bus import Handler, handler_name, type_label
from agent_events.agent_runtime.events import (
    EventType,
    EventTypeLike,
    ForeignEventType,
    SystemEvent,
)
from agent_events.consumers.handlers._calling import call_handler

__all__ = ["EventRouter"]

H = TypeVar("H", bound=Handler)


class EventRouter:
    """A table of event type -> handlers, itself one handler (subscribe it to ``ANY``).

    For an event, the handlers of its type run first, then those routed with
    ``EventType.ANY``, each group in registration order, one after another. If any
    raised, :meth:`dispatch` raises an ``ExceptionGroup`` of all their errors after
    all of them ran. Cancellation is not collected: it stops the dispatch at once.
    """

    def __init__(self) -> None:
        self.routes: dict[EventTypeLike, list[Handler]] = {}

    def add_route(self, event_type: EventTypeLike, handler: Handler) -> None:
        """Route events of ``event_type`` (``EventType.ANY``: every event) to ``handler``."""
        if not isinstance(event_type, Enum | ForeignEventType):
            raise SubscriptionError(
                f"route needs an event type (an EventType or custom Enum member), got {event_type!r}"
            )
        if not callable(handler):
            raise SubscriptionError(f"a route handler must be callable, got {handler!r}")
        self.routes.setdefault(event_type, []).append(handler)

    def route(self, event_type: EventTypeLike) -> Callable[[H], H]:
        """Decorator form of :meth:`add_route`; returns the handler unchanged."""

        def decorator(handler: H) -> H:
            self.add_route(event_type, handler)
            return handler

        return decorator

    def handlers_for(self, event_type: EventTypeLike) -> list[Handler]:
        """The handlers an event of ``event_type`` goes to, in calling order."""
        return [*self.routes.get(event_type, ()), *self.routes.get(EventType.ANY, ())]

    async def dispatch(self, event: SystemEvent) -> int:
        """Run every matching handler; returns how many ran.

        Raises ``ExceptionGroup`` (after all ran) when one or more failed.
        """
        handlers = self.handlers_for(event.event_type)
        errors: list[Exception] = []
        for handler in handlers:
            try:
                await call_handler(handler, event)
            except Exception as exc:  # noqa: BLE001 (collected and re-raised as a group)
                exc.add_note(f"in route handler {handler_name(handler)}")
                errors.append(exc)
        if errors:
            raise ExceptionGroup(
                f"{len(errors)} of {len(handlers)} route handlers failed on "
                f"{type_label(event.event_type)} event {event.event_id}",
                errors,
            )
        return len(handlers)

    async def __call__(self, event: SystemEvent) -> None:
        await self.dispatch(event)
