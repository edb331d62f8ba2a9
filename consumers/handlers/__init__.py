"""Every handler and pattern of the event-system spec, as library classes.

Each handler is an ``async`` callable taking a :class:`~agent_runtime.events.SystemEvent`,
so the same object is subscribed to an in-process ``EventBus`` or run by a Kafka
consumer service (which retries and dead-letters a record when its handler
raises). Nothing here imports Kafka, and every handler keeps bounded memory.
"""

from consumers.handlers.aggregator import (
    ALERT_KIND,
    AggregationAlert,
    EventAggregator,
    ThresholdCallback,
)
from consumers.handlers.alerting import (
    Alert,
    AlertingHandler,
    AlertSink,
    CollectingAlertSink,
    LoggingAlertSink,
)
from consumers.handlers.batch import BatchErrorCallback, BatchEventHandler, BatchProcessor
from consumers.handlers.concurrency import BackgroundHandler, ConcurrencyLimitedHandler
from consumers.handlers.duration_stats import (
    DEFAULT_RESERVOIR_SIZE,
    DurationStats,
    DurationSummary,
)
from consumers.handlers.event_logging import LoggingHandler
from consumers.handlers.event_sourcing import (
    EventSourcingHandler,
    Projector,
    SessionProjection,
    SessionState,
)
from consumers.handlers.event_store import EventStore, InMemoryEventStore, SQLiteEventStore
from consumers.handlers.filtered import Condition, FilteredHandler
from consumers.handlers.idempotency import IdempotentHandler, SeenEvents
from consumers.handlers.isolation import ErrorIsolatedHandler, safe_handler
from consumers.handlers.metrics import MetricsCollector
from consumers.handlers.postgres_store import PostgresEventStore
from consumers.handlers.priority import Priority, PriorityEventBus
from consumers.handlers.retry import RetryHandler
from consumers.handlers.router import EventRouter
from consumers.handlers.statistics import OTHER_TYPES, EventStatistics, StatisticsSummary
from consumers.handlers.tracer import EventTracer, TraceError, TraceRecord
from consumers.handlers.transformer import EventTransformer, Transform, stamp_processing_metadata

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
