"""Every handler and pattern of the event-system spec, as library classes.

Each handler is an ``async`` callable taking a :class:`~agent_runtime.events.SystemEvent`,
so the same object is subscribed to an in-process ``EventBus`` or run by a Kafka
consumer service (which retries and dead-letters a record when its handler
raises). Nothing here imports Kafka, and every handler keeps bounded memory.
"""

from agent_events.consumers.handlers.aggregator import (
    ALERT_KIND,
    AggregationAlert,
    EventAggregator,
    ThresholdCallback,
)
from agent_events.consumers.handlers.alerting import (
    Alert,
    AlertingHandler,
    AlertSink,
    CollectingAlertSink,
    LoggingAlertSink,
)
from agent_events.consumers.handlers.batch import (
    BatchErrorCallback,
    BatchEventHandler,
    BatchProcessor,
)
from agent_events.consumers.handlers.concurrency import BackgroundHandler, ConcurrencyLimitedHandler
from agent_events.consumers.handlers.duration_stats import (
    DEFAULT_RESERVOIR_SIZE,
    DurationStats,
    DurationSummary,
)
from agent_events.consumers.handlers.event_logging import LoggingHandler
from agent_events.consumers.handlers.event_sourcing import (
    EventSourcingHandler,
    Projector,
    SessionProjection,
    SessionState,
)
from agent_events.consumers.handlers.event_store import (
    EventStore,
    InMemoryEventStore,
    SQLiteEventStore,
)
from agent_events.consumers.handlers.filtered import Condition, FilteredHandler
from agent_events.consumers.handlers.idempotency import IdempotentHandler, SeenEvents
from agent_events.consumers.handlers.isolation import ErrorIsolatedHandler, safe_handler
from agent_events.consumers.handlers.metrics import MetricsCollector
from agent_events.consumers.handlers.postgres_store import PostgresEventStore
from agent_events.consumers.handlers.priority import Priority, PriorityEventBus
from agent_events.consumers.handlers.retry import RetryHandler
from agent_events.consumers.handlers.router import EventRouter
from agent_events.consumers.handlers.statistics import (
    OTHER_TYPES,
    EventStatistics,
    StatisticsSummary,
)
from agent_events.consumers.handlers.tracer import EventTracer, TraceError, TraceRecord
from agent_events.consumers.handlers.transformer import (
    EventTransformer,
    Transform,
    stamp_processing_metadata,
)

__all__ = [
    "ALERT_KIND",
    "DEFAULT_RESERVOIR_SIZE",
    "OTHER_TYPES",
    "AggregationAlert",
    "Alert",
    "AlertSink",
    "AlertingHandler",
    "BackgroundHandler",
    "BatchErrorCallback",
    "BatchEventHandler",
    "BatchProcessor",
    "CollectingAlertSink",
    "ConcurrencyLimitedHandler",
    "Condition",
    "DurationStats",
    "DurationSummary",
    "ErrorIsolatedHandler",
    "EventAggregator",
    "EventRouter",
    "EventSourcingHandler",
    "EventStatistics",
    "EventStore",
    "EventTracer",
    "EventTransformer",
    "FilteredHandler",
    "IdempotentHandler",
    "InMemoryEventStore",
    "LoggingAlertSink",
    "LoggingHandler",
    "MetricsCollector",
    "PostgresEventStore",
    "Priority",
    "PriorityEventBus",
    "Projector",
    "RetryHandler",
    "SQLiteEventStore",
    "SeenEvents",
    "SessionProjection",
    "SessionState",
    "StatisticsSummary",
    "ThresholdCallback",
    "TraceError",
    "TraceRecord",
    "Transform",
    "safe_handler",
    "stamp_processing_metadata",
]
