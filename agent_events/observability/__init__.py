"""Observability of the services: Prometheus metrics, health, structured logs, tracing.

Metric names and labels follow ``notes/conventions.md``; OpenTelemetry is optional
(the ``otel`` extra) and costs nothing when absent.
"""

from agent_events.observability.http import HealthCheck, MetricsServer
from agent_events.observability.lag import LagMonitor
from agent_events.observability.logs import (
    EVENTS_LOGGER,
    LogFormat,
    bound_log_fields,
    configure_logging,
)
from agent_events.observability.metrics import (
    HANDLER_DURATION_BUCKETS,
    CallbackCounter,
    ServiceMetrics,
    record_outcomes,
)
from agent_events.observability.observer import ServiceObserver
from agent_events.observability.otel import (
    OTEL_AVAILABLE,
    PROPAGATED_HEADERS,
    current_trace_id,
    mark_failed,
    process_span,
)

__all__ = [
    "EVENTS_LOGGER",
    "HANDLER_DURATION_BUCKETS",
    "OTEL_AVAILABLE",
    "PROPAGATED_HEADERS",
    "CallbackCounter",
    "HealthCheck",
    "LagMonitor",
    "LogFormat",
    "MetricsServer",
    "ServiceMetrics",
    "ServiceObserver",
    "bound_log_fields",
    "configure_logging",
    "current_trace_id",
    "mark_failed",
    "process_span",
    "record_outcomes",
]
