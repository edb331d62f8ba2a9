"""The same Kafka work done by agent-events, raw aiokafka, confluent-kafka and FastStream.

Each producer sends the same Avro-encoded events with the same keys (the session
id) to its own topic with the same delivery settings (``acks=all``, idempotent,
the same linger and batch size) and waits until every record is acknowledged.
Each consumer reads the same records from the earliest offset, decodes every
value with the Avro codec, awaits a no-op handler and commits what it handled.

Every baseline is the best a user would write by hand: raw aiokafka's producer
groups records per partition into ``send_batch`` and sends the same headers ours
does (event type, content type, producer id, per-session sequence); its consumer
is a ``getmany`` loop with the library's default fetch sizes (no record cap).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from agent_events.agent_runtime.event_bus import SystemEvent
from agent_events.consumers import ConsumerService
from agent_events.producers import KafkaEventProducer, partition_for_key
from agent_events.producers.headers import (
    CONTENT_TYPE_HEADER,
    EVENT_TYPE_HEADER,
    PRODUCER_ID_HEADER,
    SEQUENCE_HEADER,
)
from agent_events.producers.partitioner import SessionKeyPartitioner
from agent_events.schemas.codec import CONTENT_TYPE, decode_event, encode_event
from agent_events.transport import ClientKind

__all__ = ["CONSUMERS", "PRODUCERS", "Ticker"]

LINGER_MS = 5
BATCH_BYTES = 256 * 1024
DEADLINE_S = 300.0

ProducerRun = Callable[[str, str, list[SystemEvent]], Awaitable[None]]
ConsumerRun = Callable[[str, str, str, "Ticker"], Awaitable[None]]


class Ticker:
    """Counts handled records; the rate runs from the first record to the last,
    so joining the group (seconds, the same for everyone) is not in the figure."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.done = asyncio.Event()

    def tick(self) -> None:
        now = time.perf_counter()
        if self.count == 0:
            self.first = now
        self.count += 1
        self.last = now
        if self.count >= self.expected:
            self.done.set()

    @property
    def rate(self) -> float:
        span = self.last - self.first
        return (self.count - 1) / span if span > 0 else 0.0


# ------------------------------------------------------------------- producers


async def produce_agent_events(
    bootstrap: str, topic: str, events: list[SystemEvent], *, client: ClientKind = "aiokafka"
) -> None:
    async with KafkaEventProducer(
        bootstrap_servers=bootstrap,
        topic=topic,
        linger_ms=LINGER_MS,
        max_batch_size=BATCH_BYTES,
        client=client,
    ) as producer:
        for event in events:
            await producer.send(event)
        await producer.flush()
    assert producer.stats.acknowledged == len(events), producer.stats


def _raw_producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=LINGER_MS,
        max_batch_size=BATCH_BYTES,
        partitioner=SessionKeyPartitioner(),
    )


async def produce_raw_send(bootstrap: str, topic: str, events: list[SystemEvent]) -> None:
    """aiokafka's ``send()`` per record: encode, key, send; then flush."""
    producer = _raw_producer(bootstrap)
    await producer.start()
    try:
        for event in events:
            await producer.send(topic, encode_event(event), key=str(event.session_id).encode())
        await producer.flush()
    finally:
        await producer.stop()


def _same_headers() -> Callable[[SystemEvent], list[tuple[str, bytes]]]:
    """The headers every agent-events record carries, built as a hand-written producer would."""
    static = [
        (CONTENT_TYPE_HEADER, CONTENT_TYPE.encode()),
        (PRODUCER_ID_HEADER, uuid.uuid4().hex.encode()),
    ]
    sequences: dict[str, int] = {}

    def headers(event: SystemEvent) -> list[tuple[str, bytes]]:
        key = event.partition_key
        sequence = sequences[key] = sequences.get(key, 0) + 1
        return [
            (EVENT_TYPE_HEADER, event.event_type.value.encode()),
            *static,
            (SEQUENCE_HEADER, str(sequence).encode()),
        ]

    return headers


async def produce_raw_batches(bootstrap: str, topic: str, events: list[SystemEvent]) -> None:
    """aiokafka's fastest path: records grouped per partition into ``send_batch``."""
    producer = _raw_producer(bootstrap)
    headers_of = _same_headers()
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topic))
        batches: dict[int, Any] = {}
        pending: list[asyncio.Future[Any]] = []
        for event in events:
            key = str(event.session_id).encode()
            partition = partition_for_key(key, len(partitions))
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = producer.create_batch()
            value = encode_event(event)
            headers = headers_of(event)
            timestamp = int(event.timestamp.timestamp() * 1000)
            if batch.append(key=key, value=value, timestamp=timestamp, headers=headers) is None:
                pending.append(await producer.send_batch(batch, topic, partition=partition))
                batch = batches[partition] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=timestamp, headers=headers)
        for partition, batch in batches.items():
            pending.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def produce_confluent(bootstrap: str, topic: str, events: list[SystemEvent]) -> None:
    """librdkafka through confluent-kafka, driven from a thread (it is a blocking client)."""
    from confluent_kafka import Producer

    def run() -> None:
        producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": LINGER_MS,
                "batch.size": BATCH_BYTES,
                "partitioner": "murmur2_random",
            }
        )
        failures: list[Any] = []

        def on_delivery(err: Any, msg: Any) -> None:
            if err is not None:
                failures.append(err)

        for event in events:  # encoded here, as every other contender does
            key, value = str(event.session_id).encode(), encode_event(event)
            while True:
                try:
                    producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.01)
            producer.poll(0)
        producer.flush(DEADLINE_S)
        assert not failures, failures[:3]

    await asyncio.to_thread(run)


async def produce_faststream(bootstrap: str, topic: str, events: list[SystemEvent]) -> None:
    """FastStream's KafkaBroker (on aiokafka): ``publish`` per record, acks=all."""
    from faststream.kafka import KafkaBroker

    broker = KafkaBroker(
        bootstrap, enable_idempotence=True, linger_ms=LINGER_MS, max_batch_size=BATCH_BYTES
    )
    await broker.start()
    try:
        futures = []
        for event in events:
            futures.append(
                await broker.publish(
                    encode_event(event), topic, key=str(event.session_id).encode(), no_confirm=True
                )
            )
        await asyncio.gather(*[f for f in futures if isinstance(f, asyncio.Future)])
    finally:
        await broker.stop()


PRODUCERS: dict[str, ProducerRun] = {
    "agent-events KafkaEventProducer": produce_agent_events,
    "agent-events KafkaEventProducer (confluent)": partial(
        produce_agent_events, client="confluent"
    ),
    "raw aiokafka send()": produce_raw_send,
    "raw aiokafka send_batch()": produce_raw_batches,
    "confluent-kafka": produce_confluent,
    "FastStream": produce_faststream,
}


# ------------------------------------------------------------------- consumers


async def consume_agent_events(
    bootstrap: str, topic: str, group: str, ticker: Ticker, *, client: ClientKind = "aiokafka"
) -> None:
    async def noop(event: SystemEvent) -> None:
        ticker.tick()

    async with ConsumerService(
        bootstrap_servers=bootstrap,
        topics=[topic],
        group_id=group,
        dlq_topic=None,
        handlers=[noop],
        client=client,
    ) as service:
        runner = asyncio.create_task(service.run())
        async with asyncio.timeout(DEADLINE_S):
            await ticker.done.wait()
        service.request_stop()
        await runner


async def consume_raw_aiokafka(bootstrap: str, topic: str, group: str, ticker: Ticker) -> None:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )

    async def noop(event: SystemEvent) -> None:
        ticker.tick()

    await consumer.start()
    try:
        async with asyncio.timeout(DEADLINE_S):
            while not ticker.done.is_set():
                batch = await consumer.getmany(timeout_ms=100)
                offsets = {}
                for tp, records in batch.items():
                    for record in records:
                        await noop(decode_event(record.value))
                    offsets[tp] = records[-1].offset + 1
                if offsets:
                    await consumer.commit(offsets)
    finally:
        await consumer.stop()


async def consume_confluent(bootstrap: str, topic: str, group: str, ticker: Ticker) -> None:
    from confluent_kafka import Consumer

    def run() -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe([topic])
        give_up = time.monotonic() + DEADLINE_S
        try:
            while ticker.count < ticker.expected and time.monotonic() < give_up:
                messages = consumer.consume(500, 0.1)
                for message in messages:
                    if message.error() is None:
                        decode_event(message.value() or b"")
                        ticker.tick()
                if messages:
                    consumer.commit(asynchronous=True)
        finally:
            consumer.close()
        assert ticker.count >= ticker.expected

    await asyncio.to_thread(run)


async def consume_faststream(bootstrap: str, topic: str, group: str, ticker: Ticker) -> None:
    from faststream.kafka import KafkaBroker

    broker = KafkaBroker(bootstrap, logger=None)

    @broker.subscriber(topic, group_id=group, auto_offset_reset="earliest")
    async def handle(body: bytes) -> None:
        decode_event(body)
        ticker.tick()

    await broker.start()
    try:
        async with asyncio.timeout(DEADLINE_S):
            await ticker.done.wait()
    finally:
        await broker.stop()


CONSUMERS: dict[str, ConsumerRun] = {
    "agent-events ConsumerService": consume_agent_events,
    "agent-events ConsumerService (confluent)": partial(consume_agent_events, client="confluent"),
    "raw aiokafka loop": consume_raw_aiokafka,
    "confluent-kafka": consume_confluent,
    "FastStream": consume_faststream,
}
