"""The consumer services operators deploy: one consumer group each, scaled by processes.

``SERVICES`` maps a service name (``agent-events consume NAME``) to its builder; add a
service with one line: ``SERVICES["name"] = MyService``; another package adds one with an
``agent_events.services`` entry point (:mod:`agent_events.services.plugins`).
:class:`ServiceHost` runs any of them with metrics, health, lag and a clean stop.
"""

from prometheus_client import CollectorRegistry

from agent_events.services._base import NamedHandler, Service, ServiceBuilder
from agent_events.services.aggregate import build_aggregate_service
from agent_events.services.alerting import AlertingService, WebhookAlertSink
from agent_events.services.event_logging import EventLoggingService
from agent_events.services.host import ServiceHost
from agent_events.services.metrics import MetricsService
from agent_events.services.plugins import resolve_builder
from agent_events.services.router import RouterService, import_object
from agent_events.services.sessions import SessionsService
from agent_events.services.statistics import StatisticsService
from agent_events.services.store import StoreService, store_from_url
from agent_events.services.tracing import TraceStore, TracingService, load_trace, trace_sessions
from agent_events.settings import AgentEventsSettings

__all__ = [
    "SERVICES",
    "AlertingService",
    "EventLoggingService",
    "MetricsService",
    "NamedHandler",
    "RouterService",
    "Service",
    "ServiceBuilder",
    "ServiceHost",
    "SessionsService",
    "StatisticsService",
    "StoreService",
    "TraceStore",
    "TracingService",
    "WebhookAlertSink",
    "build_service",
    "import_object",
    "load_trace",
    "store_from_url",
    "trace_sessions",
]

SERVICES: dict[str, ServiceBuilder] = {
    "metrics": MetricsService,
    "alerting": AlertingService,
    "logging": EventLoggingService,
    "tracing": TracingService,
    "statistics": StatisticsService,
    "store": StoreService,
    "router": RouterService,
    "aggregate": build_aggregate_service,
    "sessions": SessionsService,
}


def build_service(
    name: str, settings: AgentEventsSettings, registry: CollectorRegistry | None = None
) -> Service:
    """Build the service called ``name``, built-in or a plugin (:mod:`.plugins`);
    :class:`ConfigError` names the known ones."""
    builder = resolve_builder(name, SERVICES)
    return builder(settings, registry if registry is not None else CollectorRegistry())
