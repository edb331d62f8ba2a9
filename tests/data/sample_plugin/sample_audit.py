"""A service of someone else's package: ``agent-events consume sample-audit`` runs it.

Its entry points (``pyproject.toml``) name an :class:`App` (``sample-audit``) and a
``ServiceBuilder`` (``sample-audit-counter``). The app reads ``$SAMPLE_AUDIT_TOPIC`` by
default. Each writes one JSON line per completed
agent, and the app its hooks too, to the file ``$SAMPLE_AUDIT_FILE`` names.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from prometheus_client import CollectorRegistry

from agent_events import App, EventType, SystemEvent
from agent_events.consumers.runtime import HandlerSpec
from agent_events.services import Service
from agent_events.settings import AgentEventsSettings

# Its topic is the app's own default (no --topic needed); the test names a fresh one.
app = App("sample-audit", topic=os.environ.get("SAMPLE_AUDIT_TOPIC"))


async def write_line(record: dict[str, object]) -> None:
    """Append ``record`` to the audit file, off the event loop."""
    await asyncio.to_thread(_append, json.dumps(record) + "\n")


def _append(line: str) -> None:
    with Path(os.environ["SAMPLE_AUDIT_FILE"]).open("a", encoding="utf-8") as out:
        out.write(line)


@app.on_startup
async def opened() -> None:
    await write_line({"hook": "startup"})


@app.on_shutdown
async def closed() -> None:
    await write_line({"hook": "shutdown"})


@app.handler(EventType.AGENT_COMPLETED)
async def audit(event: SystemEvent) -> None:
    await write_line({"service": "app", "agent_id": event.agent_id})


class CounterService(Service):
    """A plain Service subclass, built by :func:`build_counter`."""

    name = "sample-audit-counter"

    def handlers(self) -> list[HandlerSpec]:
        return [(EventType.AGENT_COMPLETED, self.count)]

    async def count(self, event: SystemEvent) -> None:
        await write_line({"service": "counter", "agent_id": event.agent_id})


def build_counter(settings: AgentEventsSettings, registry: CollectorRegistry) -> Service:
    return CounterService(settings, registry)
