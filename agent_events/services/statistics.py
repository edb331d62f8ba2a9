"""The ``statistics`` service: event totals by type and execution-time summaries by agent.

Runs the spec's :class:`EventStatistics` (bounded memory). Each process of the group
sees its own partitions, so its figures cover those sessions; the per-type totals of
all processes add up to the topic's (the ``agent_events_events_consumed_total`` series
sum the same way in Prometheus).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from agent_events.consumers.handlers import EventStatistics
from agent_events.consumers.runtime import HandlerSpec
from agent_events.services._base import NamedHandler, Service
from agent_events.settings import AgentEventsSettings

__all__ = ["StatisticsService"]


class StatisticsService(Service):
    """Totals by event type and timing (count, avg, min, max, p50, p95) by agent."""

    name = "statistics"

    def __init__(self, settings: AgentEventsSettings, registry: CollectorRegistry) -> None:
        super().__init__(settings, registry)
        self.statistics = EventStatistics()

    def handlers(self) -> list[HandlerSpec]:
        return [NamedHandler("statistics", self.statistics.record)]

    async def summary(self) -> dict[str, Any]:
        return dict(self.statistics.get_summary())
