"""The producer's OpenTelemetry ``send {topic}`` span and W3C ``traceparent`` header.

Always on, no hook to pass: when the application configured an OpenTelemetry SDK
``TracerProvider``, every send is a PRODUCER span, a child of the span current where
the event was published (the bus carries the publisher's context to the producer),
and the record carries ``traceparent`` (and ``tracestate``) for the consumer's
``process`` span. Without an SDK but inside a trace (a consumer that produces), the
trace is still propagated in the headers. Without ``opentelemetry-api`` installed,
or outside any trace, a send costs one check. Attribute names come from the
semantic-conventions package, not string literals.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Final
from uuid import UUID

from agent_events.producers.headers import Headers

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind
except ImportError:  # the otel extra is not installed
    OTEL_AVAILABLE = False
else:
    OTEL_AVAILABLE = True
try:  # installed with the SDK, the only case that records spans
    from opentelemetry.semconv._incubating.attributes import messaging_attributes as messaging
    from opentelemetry.semconv.attributes import server_attributes as server
except ImportError:
    SEMCONV_AVAILABLE = False
else:
    SEMCONV_AVAILABLE = True

__all__ = ["OTEL_AVAILABLE", "SendTarget", "SendTracer"]

_TRACER_NAME = "agent_events"


@dataclass(frozen=True, slots=True)
class SendTarget:
    """What a send span says about the producer: the broker it talks to and its client id."""

    server_address: str
    server_port: int | None
    client_id: str

    @classmethod
    def of(cls, bootstrap_servers: str, client_id: str) -> SendTarget:
        """From the first bootstrap server (``host:port``) and the client id."""
        first = bootstrap_servers.split(",")[0].strip()
        host, _, port = first.rpartition(":")
        if not host or not port.isdigit():
            return cls(first, None, client_id)
        return cls(host.strip("[]"), int(port), client_id)


_NO_SPAN: Final = nullcontext()  # reusable: it holds no state
_NOT_RECORDING: Final = (
    (trace.ProxyTracerProvider, trace.NoOpTracerProvider) if OTEL_AVAILABLE else ()
)


def _sdk_configured() -> bool:
    return SEMCONV_AVAILABLE and not isinstance(trace.get_tracer_provider(), _NOT_RECORDING)


def _propagated_only(headers: Headers) -> AbstractContextManager[object]:
    if trace.get_current_span().get_span_context().is_valid:
        _inject(headers)
    return _NO_SPAN


class SendTracer:
    """The span of each send of one producer (appending the trace headers), asking for the SDK at most every ``recheck_s``.

    OpenTelemetry answers "is an SDK configured?" with an environment lookup while none
    is (7 us, a tenth of a send). A provider, once set, stays for the process, so a yes
    is kept for good; a no is asked again after ``recheck_s``, so an SDK configured
    after the producer started records its spans from then on.
    """

    def __init__(self, target: SendTarget, recheck_s: float = 1.0) -> None:
        self.target = target
        self._recheck_s = recheck_s
        self._recording = False
        self._asked_at = -recheck_s

    def span(
        self, topic: str, key: str, message_id: UUID, headers: Headers
    ) -> AbstractContextManager[object]:
        if not OTEL_AVAILABLE:
            return _NO_SPAN
        if not self._recording:
            now = time.monotonic()
            if now - self._asked_at >= self._recheck_s:
                self._asked_at = now
                self._recording = _sdk_configured()
        if self._recording:
            return _recorded_send(self.target, topic, key, str(message_id), headers)
        return _propagated_only(headers)


def _inject(headers: Headers) -> None:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    headers.extend((name, value.encode()) for name, value in carrier.items())


@contextmanager
def _recorded_send(
    target: SendTarget, topic: str, key: str, message_id: str, headers: Headers
) -> Iterator[object]:
    attributes: dict[str, str | int] = {
        messaging.MESSAGING_SYSTEM: messaging.MessagingSystemValues.KAFKA.value,
        messaging.MESSAGING_OPERATION_NAME: "send",
        messaging.MESSAGING_OPERATION_TYPE: messaging.MessagingOperationTypeValues.SEND.value,
        messaging.MESSAGING_DESTINATION_NAME: topic,
        messaging.MESSAGING_KAFKA_MESSAGE_KEY: key,
        messaging.MESSAGING_MESSAGE_ID: message_id,
        messaging.MESSAGING_CLIENT_ID: target.client_id,
        server.SERVER_ADDRESS: target.server_address,
    }
    if target.server_port is not None:
        attributes[server.SERVER_PORT] = target.server_port
    tracer = trace.get_tracer(_TRACER_NAME)
    with tracer.start_as_current_span(
        f"send {topic}", kind=SpanKind.PRODUCER, attributes=attributes
    ) as span:
        _inject(headers)
        yield span
