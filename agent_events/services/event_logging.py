"""The ``logging`` service: every event as one structured JSON line on stdout.

Runs the spec's :class:`LoggingHandler` on the ``agent_events.events`` logger, which
:func:`~agent_events.observability.configure_logging` sends to stdout (service logs go
to stderr). Each line has the event's ``event_type``, ``event_id``, ``agent_id``,
``user_id``, ``session_id`` (and ``execution_time_ms`` / ``error_type``), the record's
``topic``, ``partition``, ``offset`` and ``consumergroup``, and ``trace_id`` when the
producer's trace was propagated. Metadata is never logged: it may hold user data.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry

from agent_events.consumers.handlers import LoggingHandler
from agent_events.consumers.runtime import HandlerSpec
from agent_events.observability.logs import EVENTS_LOGGER
from agent_events.services._base import NamedHandler, Service
from agent_events.settings import AgentEventsSettings

__all__ = ["EventLoggingService"]


class EventLoggingService(Service):
    """Logs each event at INFO, error events at ERROR with their details."""

    name = "logging"

    def __init__(self, settings: AgentEventsSettings, registry: CollectorRegistry) -> None:
        super().__init__(settings, registry)
        self.handler = LoggingHandler(logging.getLogger(EVENTS_LOGGER))
        self.logged = 0

    async def _log(self, event: Any) -> None:
        await self.handler(event)
        self.logged += 1

    def handlers(self) -> list[HandlerSpec]:
        return [NamedHandler("logging", self._log)]

    async def summary(self) -> dict[str, Any]:
        return {"logged": self.logged}
