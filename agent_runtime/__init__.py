"""agent_runtime: the in-process side of agent-events (event model, bus, executor).

Nothing here imports Kafka: an agent that only uses the in-process bus needs no broker.
"""

from agent_events.agent_runtime.bus_metrics import LatencyStats, MetricsSnapshot
from agent_events.agent_runtime.errors import AgentEventsError
from agent_events.agent_runtime.event_bus import DispatchResult, EventBus, Handler, HandlerOutcome
from agent_events.agent_runtime.events import (
    EventType,
    EventTypeLike,
    ForeignEventType,
    SystemEvent,
    register_event_types,
)

__all__ = [
    "AgentEventsError",
    "DispatchResult",
    "EventBus",
    "EventType",
    "EventTypeLike",
    "ForeignEventType",
    "Handler",
    "HandlerOutcome",
    "LatencyStats",
    "MetricsSnapshot",
    "SystemEvent",
    "register_event_types",
]
