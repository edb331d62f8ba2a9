"""Your own handlers, run as a service: the compose file's ``router`` profile loads this module.

``docker compose --profile router up -d`` starts ``agent-events consume router`` with
``AGENT_EVENTS_ROUTER__HANDLERS='["my_handlers:handle"]'``; replace this file (or mount your
package and name its handlers) to run your code with the same retries, dead-letter topic,
metrics and scaling as the built-in services.
"""

from __future__ import annotations

import logging

from agent_events.agent_runtime.events import EventType, SystemEvent

logger = logging.getLogger("my_handlers")


async def handle(event: SystemEvent) -> None:
    """Log each completed execution; raising here would retry, then dead-letter, the event."""
    if event.event_type is EventType.AGENT_COMPLETED:
        logger.info(
            "agent %s completed in %s ms",
            event.agent_id,
            event.execution_time_ms,
            extra={"session_id": event.session_id},
        )
