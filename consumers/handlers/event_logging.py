"""Structured logging of events (the seed's ``LoggingHandler``).

Each record carries the event's fields in ``extra`` (``event_type``, ``event_id``,
``agent_id``, ``user_id``, ``session_id``), so a JSON formatter emits them as
fields. Metadata is not logged: payloads may hold user data.
"""

from __future__ import annotations

import logging

from agent_events.agent_runtime.event_bus import type_label
from agent_events.agent_runtime.events import EventType, SystemEvent

__all__ = ["LoggingHandler"]


def _fields(event: SystemEvent) -> dict[str, object]:
    return {
        "event_type": type_label(event.event_type),
        "event_id": str(event.event_id),
        "agent_id": event.agent_id,
        "user_id": event.user_id,
        "session_id": event.session_id,
    }


class LoggingHandler:
    """Logs every event at ``level`` and error events at ERROR with their details.

    Calling the object logs an error event once (at ERROR) and any other event
    once (at ``level``); ``log_event`` and ``log_error`` are the seed's methods.
    """

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.INFO) -> None:
        self.logger = logger if logger is not None else logging.getLogger("agent_events.events")
        self.level = level

    async def log_event(self, event: SystemEvent) -> None:
        """Log any event: type, agent and user."""
        fields = _fields(event)
        if event.execution_time_ms is not None:
            fields["execution_time_ms"] = event.execution_time_ms
        self.logger.log(
            self.level,
            "Event: %s, Agent: %s, User: %s",
            fields["event_type"],
            event.agent_id,
            event.user_id,
            extra=fields,
        )

    async def log_error(self, event: SystemEvent) -> None:
        """Log an ``ERROR_OCCURRED`` event at ERROR; ignores other events."""
        if event.event_type is not EventType.ERROR_OCCURRED:
            return
        fields = _fields(event)
        fields["error_type"] = event.error_type
        self.logger.error("Error in %s: %s", event.agent_id, event.error_message, extra=fields)

    async def __call__(self, event: SystemEvent) -> None:
        if event.event_type is EventType.ERROR_OCCURRED:
            await self.log_error(event)
        else:
            await self.log_event(event)
