"""Optional OpenTelemetry spans and W3C ``traceparent`` propagation through Kafka.

Installed with the ``otel`` extra; without ``opentelemetry-api`` everything here is a
no-op and nothing imports it. Only the API is used: spans are recorded once the
application configures an SDK ``TracerProvider`` (for instance by running the service
under ``opentelemetry-instrument``); without one they cost next to nothing.

* The producer's ``send {topic}`` PRODUCER span and ``traceparent`` header are built
  into :class:`~producers.producer.KafkaEventProducer` (``producers/_tracing.py``):
  no hook to pass.
* :func:`process_span` makes the ``process {topic}`` CONSUMER span of one record, a
  child of the producer's span extracted from its headers, current while every
  handler runs, so a handler's own spans and log lines join the agent's trace.

Attribute names come from the OpenTelemetry semantic-conventions package.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeAlias

from aiokafka.structs import ConsumerRecord

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, StatusCode
except ImportError:  # the otel extra is not installed
    OTEL_AVAILABLE = False
else:
    OTEL_AVAILABLE = True
try:  # installed with the SDK: without it spans are not recorded, attributes not needed
    from opentelemetry.semconv._incubating.attributes import messaging_attributes as messaging
    from opentelemetry.semconv.attributes import error_attributes
except ImportError:
    SEMCONV_AVAILABLE = False
else:
    SEMCONV_AVAILABLE = True

__all__ = [
    "OTEL_AVAILABLE",
    "PROPAGATED_HEADERS",
    "current_trace_id",
    "mark_failed",
    "process_span",
]

Record: TypeAlias = ConsumerRecord  # aiokafka ships no type information

PROPAGATED_HEADERS = ("traceparent", "tracestate")
_TRACER_NAME = "agent_events"


def process_span(record: Record, consumer_group: str) -> AbstractContextManager[object]:
    """The CONSUMER span of one record, parented by the trace in its headers (if any)."""
    if not OTEL_AVAILABLE:
        return nullcontext()
    return _process_span(record, consumer_group)


@contextmanager
def _process_span(record: Record, consumer_group: str) -> Iterator[object]:
    carrier = {
        name: value.decode("latin-1")
        for name, value in record.headers or ()
        if name in PROPAGATED_HEADERS and value is not None
    }
    parent = propagate.extract(carrier) if carrier else None
    tracer = trace.get_tracer(_TRACER_NAME)
    with tracer.start_as_current_span(
        f"process {record.topic}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes=_process_attributes(record, consumer_group) if SEMCONV_AVAILABLE else None,
    ) as span:
        yield span


def _process_attributes(record: Record, consumer_group: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        messaging.MESSAGING_SYSTEM: messaging.MessagingSystemValues.KAFKA.value,
        messaging.MESSAGING_OPERATION_NAME: "process",
        messaging.MESSAGING_OPERATION_TYPE: messaging.MessagingOperationTypeValues.PROCESS.value,
        messaging.MESSAGING_DESTINATION_NAME: record.topic,
        messaging.MESSAGING_DESTINATION_PARTITION_ID: str(record.partition),
        messaging.MESSAGING_CONSUMER_GROUP_NAME: consumer_group,
        messaging.MESSAGING_KAFKA_OFFSET: record.offset,
    }
    if record.key is not None:
        attributes[messaging.MESSAGING_KAFKA_MESSAGE_KEY] = record.key.decode("utf-8", "replace")
    return attributes


def mark_failed(error: BaseException | str) -> None:
    """Set ``error.type`` and an error status on the current span (no-op without one)."""
    if not OTEL_AVAILABLE:
        return
    span = trace.get_current_span()
    if not span.is_recording() or not SEMCONV_AVAILABLE:
        return
    name = error if isinstance(error, str) else type(error).__qualname__
    span.set_attribute(error_attributes.ERROR_TYPE, name)
    span.set_status(StatusCode.ERROR, str(error))


def current_trace_id() -> str | None:
    """The current span's trace id as 32 hex digits, or ``None`` (for log lines)."""
    if not OTEL_AVAILABLE:
        return None
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None
