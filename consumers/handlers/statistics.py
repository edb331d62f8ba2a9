"""Event counts by type and execution-time statistics by agent (the seed's ``EventStatistics``).

Fixes of the seed: ``if event.execution_time_ms:`` skipped 0 ms durations; every
duration was kept in an unbounded list. Here each agent has constant-size running
statistics, at most ``max_agents`` agents and ``max_types`` type labels are kept.
"""

from __future__ import annotations

from collections import Counter
from typing import TypedDict

from agent_events.agent_runtime.event_bus import type_label
from agent_events.agent_runtime.events import SystemEvent
from agent_events.agent_runtime.lru import LRUMap, require_positive_int
from agent_events.consumers.handlers.duration_stats import (
    DEFAULT_RESERVOIR_SIZE,
    DurationStats,
    DurationSummary,
)

__all__ = ["OTHER_TYPES", "EventStatistics", "StatisticsSummary"]

OTHER_TYPES = "(other)"
"""The ``by_type`` label that counts types seen after ``max_types`` distinct ones."""


class StatisticsSummary(TypedDict):
    total_events: int
    by_type: dict[str, int]
    timing: dict[str, DurationSummary]


class EventStatistics:
    """Counts every event by type; keeps duration statistics of events that carry one."""

    def __init__(
        self,
        *,
        reservoir_size: int = DEFAULT_RESERVOIR_SIZE,
        max_agents: int = 10_000,
        max_types: int = 1_000,
    ) -> None:
        self.counter: Counter[str] = Counter()
        self.reservoir_size = require_positive_int("reservoir_size", reservoir_size)
        self.max_types = require_positive_int("max_types", max_types)
        self.timing: LRUMap[str, DurationStats] = LRUMap(
            require_positive_int("max_agents", max_agents)
        )

    async def record(self, event: SystemEvent) -> None:
        """Count one event; a duration of 0 ms counts as a duration."""
        label = type_label(event.event_type)
        if label not in self.counter and len(self.counter) >= self.max_types:
            label = OTHER_TYPES
        self.counter[label] += 1
        if event.execution_time_ms is not None:
            self.timing.get_or_create(
                event.agent_id, lambda: DurationStats(self.reservoir_size)
            ).observe(event.execution_time_ms)

    __call__ = record

    def get_summary(self) -> StatisticsSummary:
        """``{"total_events", "by_type", "timing": {agent: {"avg", "min", "max", "count", ...}}}``."""
        return StatisticsSummary(
            total_events=sum(self.counter.values()),
            by_type=dict(self.counter),
            timing={agent: stats.summary() for agent, stats in self.timing.items()},
        )
