"""``KafkaEventProducer``: SystemEvents onto Kafka, keyed by session, in order.

Guarantees:

* **Per-session order.** The key is ``session_id`` (``agent_id`` without a session),
  partitioned with Java's murmur2, and the producer is idempotent with
  ``acks=all``, so a session's events land on one partition in send order, once.
  The same holds with ``client="confluent"`` (librdkafka): we choose the partition for
  both libraries.
* **Bounded waiting for the agent.** Attached to an :class:`EventBus`, the producer
  is one ``ANY`` subscriber: its bus queue (``max_queue_size`` events) plus
  the client library's buffer are the buffer. The agent's ``publish`` waits only when
  that queue is full (backpressure, nothing dropped); ``publish_sync`` then raises
  :class:`QueueFull`.
* **No silent loss.** A record the broker does not acknowledge (broker gone past
  ``request_timeout_ms``, record too large) is counted in :attr:`stats`, logged,
  and handed to ``on_delivery_error``; ``send_and_wait`` raises it as a
  :class:`ProduceError`.
* **Nothing left behind on the bus.** The producer owns what :meth:`attach`
  subscribed: leaving ``async with`` (or :meth:`stop`) first sends every event
  already published to the bus, then flushes, then closes.
* **The agent's trace goes along.** A send made while a span is current (through
  ``attach``, the publisher's span) carries W3C ``traceparent``; with an
  OpenTelemetry SDK configured it is also a ``send {topic}`` PRODUCER span.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Unpack

from aiokafka.errors import BrokerResponseError, KafkaConnectionError, MessageSizeTooLargeError
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.structs import TopicPartition

from agent_events.agent_runtime.errors import (
    AgentEventsError,
    KafkaError,
    ProduceError,
    RecordTooLarge,
    UnsupportedByBroker,
)
from agent_events.agent_runtime.event_bus import EventBus, type_label
from agent_events.agent_runtime.events import (
    EventType,
    EventTypeLike,
    SystemEvent,
    event_time_ms,
)
from agent_events.agent_runtime.resource import AsyncResource
from agent_events.producers._batches import Pending, RecordSender, open_sender
from agent_events.producers._tracing import SendTarget, SendTracer
from agent_events.producers.config import ProducerConfig, ProducerOptions
from agent_events.producers.headers import (
    AGENT_ID_HEADER,
    CONTENT_TYPE_HEADER,
    EVENT_TYPE_HEADER,
    PRODUCER_ID_HEADER,
    SEQUENCE_HEADER,
    Headers,
    SessionSequencer,
    new_producer_id,
)
from agent_events.producers.partitioner import SessionKeyPartitioner
from agent_events.schemas.codec import EventCodec
from agent_events.schemas.registry import make_event_codec
from agent_events.transport import backend_for, start_client

__all__ = [
    "DeliveryErrorCallback",
    "DeliveryResult",
    "KafkaEventProducer",
    "ProducerStats",
    "produced_total",
]

logger = logging.getLogger(__name__)

_RECORD_OVERHEAD = 128
"""Batch header and record lengths around key and value, rounded up (headers are small)."""

DeliveryErrorCallback = Callable[[SystemEvent, BaseException], None]


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """Where an acknowledged event was written."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int


@dataclass(slots=True)
class ProducerStats:
    """Counts of this producer instance since start."""

    sent: int = 0
    acknowledged: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def record_failure(self, error: BaseException) -> None:
        self.failed += 1
        name = type(error).__name__
        self.errors[name] = self.errors.get(name, 0) + 1


_IN_PROCESS = ProducerStats()
"""Every producer instance of this process together (only ``acknowledged`` is kept)."""


def produced_total() -> int:
    """Events every :class:`KafkaEventProducer` of this process sent and the broker acknowledged.

    What ``agent_events_events_produced_total`` reports, whichever code produced.
    """
    return _IN_PROCESS.acknowledged


class KafkaEventProducer(AsyncResource):
    """Produce :class:`SystemEvent`s to Kafka as Avro single-object records.

    Use ``async with KafkaEventProducer(bootstrap_servers=...) as producer``; stop
    sends what attached buses still hold, flushes every record sent so far, then
    closes. Tracing is built in (module docstring).
    """

    def __init__(
        self,
        config: ProducerConfig | None = None,
        *,
        codec: EventCodec | None = None,
        on_delivery_error: DeliveryErrorCallback | None = None,
        **options: Unpack[ProducerOptions],
    ) -> None:
        config = ProducerConfig.with_overrides(config, options)
        self.config = config
        self.producer_id = new_producer_id()
        self.stats = ProducerStats()
        self._codec = codec or make_event_codec(
            config.value_format, config.schema_registry_url, topic=config.topic
        )
        self._on_delivery_error = on_delivery_error
        self._sequencer = SessionSequencer(config.sequence_cache_size)
        self._partitioner = SessionKeyPartitioner()
        self._producer: Any = None
        self._batches: RecordSender | None = None
        self._attachments: list[tuple[EventBus, str]] = []
        self._client_id = config.client_id or f"agent-events-producer-{self.producer_id[:12]}"
        self._tracer = SendTracer(SendTarget.of(config.bootstrap_servers, self._client_id))
        self._idempotent = config.enable_idempotence
        self._backend = backend_for(config)
        self._type_headers: dict[EventTypeLike, bytes] = {}
        self._static_headers: Headers = [
            (CONTENT_TYPE_HEADER, self._codec.content_type.encode()),
            (PRODUCER_ID_HEADER, self.producer_id.encode()),
        ]

    # ------------------------------------------------------------------ lifecycle

    @property
    def idempotent(self) -> bool:
        """Whether the running producer is idempotent (False after a loud fallback)."""
        return self._idempotent

    async def start(self) -> None:
        """Connect, retrying an unreachable broker until ``connect_timeout_s``.

        A broker that refuses idempotent producers fails the start when
        ``require_idempotence`` is set; otherwise the producer says so once and
        goes on with ``acks=all`` without idempotence.
        """
        if self._producer is not None:
            return
        # Before connecting: an unreachable schema registry fails the start with nothing open.
        await self._codec.prepare_topic(self.config.topic)
        try:
            self._producer = await self._start_client(self.config.enable_idempotence)
        except (KafkaError, AgentEventsError):
            raise
        except AIOKafkaError as exc:
            if not self.config.enable_idempotence:
                raise KafkaError(f"the producer could not start: {exc}") from exc
            if self.config.require_idempotence:
                raise UnsupportedByBroker(
                    f"the broker at {self.config.bootstrap_servers} refused an idempotent "
                    f"producer ({exc}); use a broker that supports it or unset require_idempotence"
                ) from exc
            logger.warning(
                "the broker at %s refused an idempotent producer (%s): producing with acks=all "
                "WITHOUT idempotence; a retried send may be written twice",
                self.config.bootstrap_servers,
                exc,
            )
            self._idempotent = False
            self._producer = await self._start_client(False)
        self._batches = open_sender(
            self.config.client,
            self._producer,
            linger_s=self.config.linger_ms / 1000,
            on_acknowledged=self._acknowledged,
            on_failure=self._failed,
            on_refused=self._refused,
        )

    async def _start_client(self, idempotent: bool) -> Any:
        options = self.config.producer_options()
        options["enable_idempotence"] = idempotent
        options["client_id"] = self._client_id
        options["partitioner"] = self._partitioner
        client = self._backend.producer(self.config, options)
        try:
            await start_client(client, self.config, what="producer")
        except AIOKafkaError:
            await client.stop()
            raise
        return client

    async def stop(self) -> None:
        """Stop without losing what was handed over, in this order.

        1. For each bus this producer is attached to: take no new events, and send
           every event the bus already queued for it (:meth:`detach`);
        2. flush: wait until every record sent so far is acknowledged or failed;
        3. close the connection (also when 1 or 2 was cancelled or failed).
        """
        try:
            await self.detach()
        finally:
            producer, self._producer = self._producer, None
            batches, self._batches = self._batches, None
            if batches is not None:
                await batches.close()
            elif producer is not None:
                await producer.stop()

    # -------------------------------------------------------------------- sending

    async def send(self, event: SystemEvent, *, topic: str | None = None) -> asyncio.Future[Any]:
        """Queue ``event`` for sending; returns the broker acknowledgement future.

        We choose the partition (Java's murmur2) and hand the record to the client
        library's sender (:mod:`producers._batches`); this waits only while the client
        has no room (aiokafka: a full batch being handed off, one per partition; librdkafka:
        its queue full) or while the topic's metadata is unknown. Raises
        :class:`EncodeError` for an event that does not fit the schema and
        :class:`RecordTooLarge` for one over ``max_request_size``.
        """
        self._require_started()
        batches = self._batches
        assert batches is not None
        topic = topic or self.config.topic
        if self._codec.needs_prepare and not self._codec.is_prepared(topic):
            await self._codec.prepare_topic(topic)  # once per topic: registers its schema
        value = self._codec.encode_for(event, topic)
        key = event.partition_key
        key_bytes = key.encode()
        headers = self._headers(event, key)
        if len(value) + len(key_bytes) + _RECORD_OVERHEAD > self.config.max_request_size:
            error: ProduceError = RecordTooLarge(
                f"event {event.event_id} is {len(value)} bytes encoded, over max_request_size "
                f"{self.config.max_request_size}; shrink its metadata or raise the limit"
            )
            self.stats.record_failure(error)
            raise error
        timestamp_ms = event_time_ms(event)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            partitions = batches.known_partitions(topic) or await batches.partition_count(topic)
            tp = TopicPartition(topic, self._partitioner.partition(key_bytes, partitions))
            with self._tracer.span(topic, key, event.event_id, headers):
                await batches.add(
                    tp,
                    key_bytes,
                    value,
                    timestamp_ms,
                    headers,
                    Pending(event, timestamp_ms, future),
                )
        except AIOKafkaError as exc:
            error = ProduceError(f"event {event.event_id} could not be queued: {exc}")
            self.stats.record_failure(error)
            raise error from exc
        self.stats.sent += 1
        return future

    async def send_and_wait(
        self, event: SystemEvent, *, topic: str | None = None
    ) -> DeliveryResult:
        """Send ``event`` and wait for the broker's acknowledgement."""
        future = await self.send(event, topic=topic)
        try:
            metadata = await future
        except AIOKafkaError as exc:
            raise _produce_error(event, exc) from exc
        return DeliveryResult(
            metadata.topic, metadata.partition, metadata.offset, metadata.timestamp
        )

    async def flush(self) -> None:
        """Wait until every record sent so far is acknowledged or has failed."""
        self._require_started()
        assert self._batches is not None
        await self._batches.flush()

    async def attach(self, bus: EventBus, event_type: EventTypeLike = EventType.ANY) -> str:
        """Stream every event published on ``bus`` to Kafka; returns the subscription id.

        The producer owns the subscription: :meth:`stop` (leaving ``async with``)
        sends every event published before it, then unsubscribes. Each send runs in
        its publisher's context, so it joins the agent's trace. The subscription has
        no handler timeout: a send waiting for a broker that is coming back must not
        be cancelled (that would lose the event).
        """
        sub_id = await bus.subscribe(event_type, self._forward, handler_timeout=None)
        self._attachments.append((bus, sub_id))
        return sub_id

    async def detach(self) -> None:
        """Unsubscribe from every attached bus, sending what each already queued for us first.

        ``bus.unsubscribe(drain=True)``: no event published after this starts is
        taken, and the call returns once every event published before is sent.
        """
        while self._attachments:
            bus, sub_id = self._attachments[-1]
            await bus.unsubscribe(sub_id, drain=True)
            self._attachments.pop()

    async def _forward(self, event: SystemEvent) -> None:
        try:
            await self.send(event)
        except AgentEventsError as exc:
            logger.error("event %s was not produced: %s", event.event_id, exc)
            if self._on_delivery_error is not None:
                self._on_delivery_error(event, exc)

    # ------------------------------------------------------------------ internals

    def _require_started(self) -> Any:
        if self._producer is None:
            raise KafkaError("the producer is not started; use 'async with' or await start()")
        return self._producer

    def _headers(self, event: SystemEvent, key: str) -> Headers:
        type_header = self._type_headers.get(event.event_type)
        if type_header is None:
            type_header = self._type_headers[event.event_type] = type_label(
                event.event_type
            ).encode()
        return [
            (EVENT_TYPE_HEADER, type_header),
            (AGENT_ID_HEADER, event.agent_id.encode()),
            *self._static_headers,
            (SEQUENCE_HEADER, str(self._sequencer.next(key)).encode()),
        ]

    def _acknowledged(self, count: int) -> None:
        _IN_PROCESS.acknowledged += count
        self.stats.acknowledged += count

    def _refused(self, exc: BaseException) -> None:
        """A batch failed: let the client send the partition's next batches (once per batch)."""
        if self._backend.recover_from_refusal(self._producer, exc):
            logger.warning(
                "the broker refused a record (%s): reset the producer's idempotence state "
                "so later sends to the partition go on",
                type(exc).__name__,
            )

    def _failed(self, event: SystemEvent, exc: BaseException) -> None:
        error = _produce_error(event, exc)
        self.stats.record_failure(error)
        logger.error("%s", error)
        if self._on_delivery_error is not None:
            self._on_delivery_error(event, error)


def _produce_error(event: SystemEvent, exc: BaseException) -> ProduceError:
    if isinstance(exc, MessageSizeTooLargeError):
        return RecordTooLarge(f"the broker refused event {event.event_id} as too large: {exc}")
    if isinstance(exc, KafkaConnectionError):
        return ProduceError(f"event {event.event_id}: broker connection lost: {exc}")
    if isinstance(exc, BrokerResponseError):
        return ProduceError(
            f"the broker refused event {event.event_id}: {exc.message} ({exc.description})"
        )
    return ProduceError(f"event {event.event_id} was not acknowledged: {exc!r}")
