"""The Prometheus metrics every service exports, with the names of ``notes/conventions.md``.

Names and labels are the ones Kafka operators already query: lag carries
kafka_exporter's labels (``consumergroup``, ``topic``, ``partition``), so its Grafana
dashboards and KEDA scalers work unchanged. No label ever holds a session or event id
(unbounded). Each service process has its own :class:`CollectorRegistry`, so several
services (or tests) can live in one process without clashing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeAlias

from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from agent_events.agent_runtime.subscription import DispatchResult, type_label
from agent_events.producers.producer import produced_total

__all__ = [
    "HANDLER_DURATION_BUCKETS",
    "CallbackCounter",
    "ServiceMetrics",
    "record_outcomes",
]

Record: TypeAlias = ConsumerRecord  # aiokafka ships no type information

HANDLER_DURATION_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
"""Handler latency buckets, from sub-millisecond bookkeeping to a slow webhook."""

NO_HANDLER = "(none)"
"""The ``handler`` label of a record no handler subscribed to (status ``ignored``)."""


class CallbackCounter(Collector):
    """A counter whose value is read from a callable at scrape time.

    For totals another object already keeps (a consumer's rebalance count, a
    producer's acknowledged records): nothing to keep in sync, nothing to forget.
    """

    def __init__(self, name: str, documentation: str, value: Callable[[], float]) -> None:
        self._name = name
        self._documentation = documentation
        self._value = value

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self._name, self._documentation, value=self._value())


class ServiceMetrics:
    """The metrics of one service process, registered in :attr:`registry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.events_consumed = Counter(
            "agent_events_events_consumed",
            "Events handled, per event type, handler and outcome (ok, failed, ignored).",
            ["event_type", "handler", "status"],
            registry=self.registry,
        )
        self.handler_duration = Histogram(
            "agent_events_handler_duration_seconds",
            "Time one handler took on one event (its last attempt).",
            ["handler"],
            buckets=HANDLER_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.dlq_events = Counter(
            "agent_events_dlq_events",
            "Records written to the dead-letter topic, by reason (the stage that failed).",
            ["reason"],
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "agent_events_consumer_lag",
            "Log-end offset minus the group's committed offset, per owned partition.",
            ["consumergroup", "topic", "partition"],
            registry=self.registry,
        )
        self.consumer_lag_last_success = Gauge(
            "agent_events_consumer_lag_last_success_timestamp_seconds",
            "Unix time of the last consumer-lag sample that reached the broker.",
            ["consumergroup"],
            registry=self.registry,
        )
        self.consumer_lag_stale = Gauge(
            "agent_events_consumer_lag_stale",
            "1 while the lag sampler cannot reach the broker (agent_events_consumer_lag "
            "is withdrawn until it can), else 0.",
            ["consumergroup"],
            registry=self.registry,
        )
        self._rebalances: Callable[[], float] = lambda: 0.0
        self.registry.register(
            CallbackCounter(
                "agent_events_rebalances",
                "Group rebalances this member took part in.",
                lambda: self._rebalances(),
            )
        )
        self.registry.register(
            CallbackCounter(
                "agent_events_events_produced",
                "Events this process produced and the broker acknowledged.",
                produced_total,
            )
        )

    def count_rebalances_from(self, value: Callable[[], float]) -> None:
        """Read ``agent_events_rebalances_total`` from ``value`` (the consumer's count)."""
        self._rebalances = value


def record_outcomes(metrics: ServiceMetrics, result: DispatchResult) -> None:
    """Count one dispatched event: one ``events_consumed`` sample per handler."""
    event_type = type_label(result.event.event_type)
    if not result.outcomes:
        metrics.events_consumed.labels(event_type, NO_HANDLER, "ignored").inc()
        return
    for outcome in result.outcomes:
        status = "ok" if outcome.error is None else "failed"
        metrics.events_consumed.labels(event_type, outcome.handler_name, status).inc()
        metrics.handler_duration.labels(outcome.handler_name).observe(outcome.duration_s)
