"""Per-agent completion counts and duration statistics (the seed's ``MetricsCollector``).

Fixes of the seed: it did ``self.metrics[f"{agent}_count"] += 1`` on a
``defaultdict(list)`` (a ``TypeError`` on the first event) and appended ``None``
durations (a ``TypeError`` in ``get_stats``). Memory is bounded: a reservoir per
agent and at most ``max_agents`` agents (least recently seen forgotten first).
"""

from __future__ import annotations

from collections.abc import Iterable

from agent_events.agent_runtime.events import EventType, EventTypeLike, SystemEvent
from agent_events.agent_runtime.lru import LRUMap, require_positive_int
from agent_events.consumers.handlers.duration_stats import (
    DEFAULT_RESERVOIR_SIZE,
    DurationStats,
    DurationSummary,
)

__all__ = ["MetricsCollector"]


class _AgentMetrics:
    __slots__ = ("count", "durations")

    def __init__(self, reservoir_size: int) -> None:
        self.count = 0
        self.durations = DurationStats(reservoir_size)


class MetricsCollector:
    """Counts completions per agent and keeps their ``execution_time_ms`` statistics.

    Subscribe ``collector`` (or ``collector.collect_metrics``) to
    ``EventType.AGENT_COMPLETED``, or to ``EventType.ANY``: events of other types
    are ignored. A completion without ``execution_time_ms`` is counted but adds no
    duration; ``0`` ms is a real duration.
    """

    def __init__(
        self,
        event_types: Iterable[EventTypeLike] = (EventType.AGENT_COMPLETED,),
        *,
        reservoir_size: int = DEFAULT_RESERVOIR_SIZE,
        max_agents: int = 10_000,
    ) -> None:
        self.event_types = frozenset(event_types)
        self.reservoir_size = require_positive_int("reservoir_size", reservoir_size)
        self._agents: LRUMap[str, _AgentMetrics] = LRUMap(
            require_positive_int("max_agents", max_agents)
        )

    async def collect_metrics(self, event: SystemEvent) -> None:
        """Record one event (the seed's method name)."""
        if event.event_type not in self.event_types:
            return
        agent = self._agents.get_or_create(
            event.agent_id, lambda: _AgentMetrics(self.reservoir_size)
        )
        agent.count += 1
        if event.execution_time_ms is not None:
            agent.durations.observe(event.execution_time_ms)

    __call__ = collect_metrics

    def get_stats(self) -> dict[str, DurationSummary]:
        """``{"<agent>_duration": {"count", "avg", "min", "max", "p50", "p95"}}``, as in the seed.

        Only agents with at least one duration appear; see :meth:`get_counts` for counts.
        """
        return {
            f"{agent_id}_duration": metrics.durations.summary()
            for agent_id, metrics in self._agents.items()
            if metrics.durations.count
        }

    def get_counts(self) -> dict[str, int]:
        """Completions per agent, including those that carried no duration."""
        return {agent_id: metrics.count for agent_id, metrics in self._agents.items()}

    def stats_for(self, agent_id: str) -> DurationSummary | None:
        """The duration summary of one agent, or ``None`` if it has no duration yet."""
        metrics = self._agents.get(agent_id)
        if metrics is None or not metrics.durations.count:
            return None
        return metrics.durations.summary()

    @property
    def agent_count(self) -> int:
        """How many agents are tracked now (never more than ``max_agents``)."""
        return len(self._agents)
