"""The ``metrics`` service: completions and execution-time statistics per agent.

Runs the spec's :class:`MetricsCollector` (count, avg, min, max, p50, p95 per agent)
and exports the same figures to Prometheus as ``agent_events_agent_completions_total``
and the histogram ``agent_events_agent_execution_seconds`` (label ``agent_id``: agents
are a bounded set, unlike sessions). Histograms add up across the processes of the
group, so ``--scale metrics=3`` still gives the fleet's percentiles in PromQL.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from agent_events.agent_runtime.events import EventType, SystemEvent
from agent_events.consumers.handlers import MetricsCollector
from agent_events.consumers.runtime import HandlerSpec
from agent_events.services._base import NamedHandler, Service
from agent_events.settings import AgentEventsSettings

__all__ = ["EXECUTION_BUCKETS", "MetricsService"]

EXECUTION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""Agent execution times, seconds: from a cached answer to a long tool-using run."""


class MetricsService(Service):
    """Per-agent completion counts and durations, in memory and in Prometheus."""

    name = "metrics"

    def __init__(self, settings: AgentEventsSettings, registry: CollectorRegistry) -> None:
        super().__init__(settings, registry)
        self.collector = MetricsCollector()
        self._completions = Counter(
            "agent_events_agent_completions",
            "Agent completions seen, per agent.",
            ["agent_id"],
            registry=registry,
        )
        self._execution = Histogram(
            "agent_events_agent_execution_seconds",
            "Agent execution time (execution_time_ms of completions), per agent.",
            ["agent_id"],
            buckets=EXECUTION_BUCKETS,
            registry=registry,
        )

    async def _record(self, event: SystemEvent) -> None:
        if event.event_type is not EventType.AGENT_COMPLETED:
            return
        await self.collector.collect_metrics(event)
        self._completions.labels(event.agent_id).inc()
        if event.execution_time_ms is not None:
            self._execution.labels(event.agent_id).observe(event.execution_time_ms / 1000)

    def handlers(self) -> list[HandlerSpec]:
        return [NamedHandler("metrics", self._record)]

    async def summary(self) -> dict[str, Any]:
        return {
            "completions": self.collector.get_counts(),
            "durations_ms": {
                agent: stats
                for agent in self.collector.get_counts()
                if (stats := self.collector.stats_for(agent)) is not None
            },
        }
