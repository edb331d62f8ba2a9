"""What a service's consumer reports per record: metrics, log fields and a trace span.

:class:`ServiceObserver` is the :class:`~consumers.processing.ProcessingObserver` (and
:class:`~consumers.processing.RecordScope`) of every ``agent-events consume`` service.
Per record, in this order:

1. enter the record's scope: bind ``topic``, ``partition``, ``offset`` and
   ``consumergroup`` to every log line, and open the ``process {topic}`` span (a child
   of the producer's, from the ``traceparent`` header) when OpenTelemetry is installed;
2. after the handlers (and their retries): count each handler's outcome and latency;
3. if the record is dead-lettered: count it by reason and mark the span failed;
4. leave the scope.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeAlias

from aiokafka.structs import ConsumerRecord

from agent_events.agent_runtime.subscription import DispatchResult
from agent_events.observability.logs import bound_log_fields
from agent_events.observability.metrics import ServiceMetrics, record_outcomes
from agent_events.observability.otel import mark_failed, process_span

__all__ = ["ServiceObserver"]

Record: TypeAlias = ConsumerRecord  # aiokafka ships no type information


class ServiceObserver:
    """Feeds :class:`ServiceMetrics` and binds log and trace context for each record."""

    def __init__(self, metrics: ServiceMetrics, consumer_group: str) -> None:
        self.metrics = metrics
        self.consumer_group = consumer_group

    def record_handled(self, record: Record, result: DispatchResult, seconds: float) -> None:
        record_outcomes(self.metrics, result)
        failures = result.failures
        if failures and failures[0].error is not None:
            mark_failed(failures[0].error)

    def record_dead_lettered(self, record: Record, reason: str) -> None:
        self.metrics.dlq_events.labels(reason).inc()
        if reason == "decode":
            mark_failed("DecodeError")

    @contextmanager
    def record_scope(self, record: Record) -> Iterator[None]:
        with (
            bound_log_fields(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                consumergroup=self.consumer_group,
            ),
            process_span(record, self.consumer_group),
        ):
            yield
