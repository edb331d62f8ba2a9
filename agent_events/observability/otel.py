"""Optional OpenTelemetry spans and W3C ``traceparent`` propagation through Kafka.

Installed with the ``otel`` extra; without ``opentelemetry-api`` everything here is a
no-op and nothing imports it. Only the API is used: spans are recorded once the
application configures an SDK ``TracerProvider`` (for instance by running the service
under ``opentelemetry-instrument``); without one they cost next to nothing.

* :class:`OtelSendHook` makes a ``send {topic}`` PRODUCER span around each send of a
  :class:`~producers.producer.KafkaEventProducer` and injects ``traceparent`` (and
  ``tracestate``) into the record's headers.
* :func:`process_span` makes the ``process {topic}`` CONSUMER span of one record, a
  child of the producer's span extracted from its headers, current while every
  handler runs, so a handler's own spans and log lines join the agent's trace.

Attribute names are the OpenTelemetry messaging semantic conventions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeAlias

from aiokafka.structs import ConsumerRecord

from agent_events.producers.headers import Headers

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, StatusCode
except ImportError:  # the otel extra is not installed
    OTEL_AVAILABLE = False
else:
    OTEL_AVAILABLE = True

__all__ = [
    "OTEL_AVAILABLE",
    "PROPAGATED_HEADERS",
    "OtelSendHook",
    "current_trace_id",
    "mark_failed",
    "process_span",
    "send_hook",
]

Record: TypeAlias = ConsumerRecord  # aiokafka ships no type information

PROPAGATED_HEADERS = ("traceparent", "tracestate")
_TRACER_NAME = "agent_events"


class OtelSendHook:
    """A :class:`~producers.producer.SendHook`: a PRODUCER span per send, context in headers."""

    def on_send(self, topic: str, key: str, headers: Headers) -> AbstractContextManager[object]:
        return _send_span(topic, key, headers)


@contextmanager
def _send_span(topic: str, key: str, headers: Headers) -> Iterator[object]:
    tracer = trace.get_tracer(_TRACER_NAME)
    attributes = {
        "messaging.system": "kafka",
        "messaging.operation.name": "send",
        "messaging.operation.type": "send",
        "messaging.destination.name": topic,
        "messaging.kafka.message.key": key,
    }
    with tracer.start_as_current_span(
        f"send {topic}", kind=SpanKind.PRODUCER, attributes=attributes
    ) as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        headers.extend((name, value.encode()) for name, value in carrier.items())
        yield span


def send_hook() -> OtelSendHook | None:
    """The hook to pass as ``KafkaEventProducer(send_hook=...)``; ``None`` without OpenTelemetry."""
    return OtelSendHook() if OTEL_AVAILABLE else None


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
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "messaging.destination.name": record.topic,
        "messaging.destination.partition.id": str(record.partition),
        "messaging.consumer.group.name": consumer_group,
        "messaging.kafka.offset": record.offset,
    }
    if record.key is not None:
        attributes["messaging.kafka.message.key"] = record.key.decode("utf-8", "replace")
    tracer = trace.get_tracer(_TRACER_NAME)
    with tracer.start_as_current_span(
        f"process {record.topic}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
    ) as span:
        yield span


def mark_failed(error: BaseException | str) -> None:
    """Set ``error.type`` and an error status on the current span (no-op without one)."""
    if not OTEL_AVAILABLE:
        return
    span = trace.get_current_span()
    if not span.is_recording():
        return
    name = error if isinstance(error, str) else type(error).__qualname__
    span.set_attribute("error.type", name)
    span.set_status(StatusCode.ERROR, str(error))


def current_trace_id() -> str | None:
    """The current span's trace id as 32 hex digits, or ``None`` (for log lines)."""
    if not OTEL_AVAILABLE:
        return None
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None
