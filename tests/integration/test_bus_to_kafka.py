"""The bus -> Kafka path as the README shows it: attach, publish, leave the block, read back."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry

from agent_events.agent_runtime.event_bus import EventBus, EventType, SystemEvent
from agent_events.broker.pytest_fixtures import NewTopic, RunningBroker
from agent_events.observability.metrics import ServiceMetrics
from agent_events.producers import KafkaEventProducer
from agent_events.producers.headers import TRACEPARENT_HEADER, header_value

READ_DEADLINE_MS = 15_000


async def read_topic(bootstrap: str, topic: str, expected: int) -> list[Any]:
    """Every record of ``topic`` up to its end; fails if fewer than ``expected`` arrive in time."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    try:
        while len(records) < expected:
            batch = await consumer.getmany(timeout_ms=READ_DEADLINE_MS)
            if not batch:
                break
            for recs in batch.values():
                records.extend(recs)
    finally:
        await consumer.stop()
    return records


def agent_event(i: int) -> SystemEvent:
    return SystemEvent(
        event_type=EventType.AGENT_COMPLETED,
        agent_id="agent-1",
        session_id=f"session-{i % 7}",
        metadata={"i": i},
    )


async def test_leaving_the_producer_block_sends_every_event_already_published_on_the_bus(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=3)
    bus = EventBus()
    # The README's "Streaming to Kafka" block, with the agent's run as 500 publishes.
    async with KafkaEventProducer(
        bootstrap_servers=broker.bootstrap_servers, topic=topic
    ) as producer:
        await producer.attach(bus)
        for i in range(500):
            await bus.publish(agent_event(i))
    assert producer.stats.acknowledged == 500, producer.stats
    assert bus.subscription_count == 0, "the producer's subscription outlived it"

    records = await read_topic(broker.bootstrap_servers, topic, 500)
    assert len(records) == 500
    await bus.stop()


async def test_span_current_when_the_agent_publishes_is_the_parent_of_the_records_trace(
    broker: RunningBroker, new_topic: NewTopic, finished_spans: Any
) -> None:
    from opentelemetry import trace

    topic = await new_topic(partitions=2)
    event = agent_event(1)
    async with (
        EventBus() as bus,
        KafkaEventProducer(bootstrap_servers=broker.bootstrap_servers, topic=topic) as producer,
    ):
        await producer.attach(bus)  # no hook: tracing is on because an SDK is configured
        with trace.get_tracer("test").start_as_current_span("agent run") as agent_span:
            await bus.publish(event)
        await bus.join()  # sent inside the block: this test is about the trace, not the drain
    agent = agent_span.get_span_context()

    [record] = await read_topic(broker.bootstrap_servers, topic, 1)
    traceparent = header_value(record.headers, TRACEPARENT_HEADER)
    assert traceparent is not None, "the record carries no traceparent"
    _, trace_id, _parent_span_id, _ = traceparent.decode().split("-")
    assert trace_id == format(agent.trace_id, "032x")

    [send] = [s for s in finished_spans.get_finished_spans() if s.name == f"send {topic}"]
    assert send.kind is trace.SpanKind.PRODUCER
    assert send.parent is not None
    assert send.parent.span_id == agent.span_id
    assert send.attributes is not None
    host, port = broker.bootstrap_servers.split(",")[0].rsplit(":", 1)
    assert send.attributes["server.address"] == host
    assert send.attributes["server.port"] == int(port)
    assert str(send.attributes["messaging.client.id"]).startswith("agent-events-producer-")
    assert send.attributes["messaging.message.id"] == str(event.event_id)
    assert send.attributes["messaging.destination.name"] == topic


async def test_events_produced_total_counts_acknowledged_sends(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=1)
    metrics = ServiceMetrics(CollectorRegistry())

    def produced() -> float:
        value = metrics.registry.get_sample_value("agent_events_events_produced_total")
        assert value is not None
        return value

    before = produced()
    async with KafkaEventProducer(
        bootstrap_servers=broker.bootstrap_servers, topic=topic
    ) as producer:
        for i in range(5):
            await producer.send_and_wait(agent_event(i))
    assert produced() - before == 5


WITHOUT_OTEL = """
import asyncio, sys

class NoOpenTelemetry:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError(f"{name} is not installed (blocked by the test)")
        return None

sys.meta_path.insert(0, NoOpenTelemetry())

from agent_events.agent_runtime.event_bus import EventBus, EventType, SystemEvent
from agent_events.producers import KafkaEventProducer
from agent_events.producers import _tracing

assert not _tracing.OTEL_AVAILABLE


async def main() -> None:
    async with EventBus() as bus:
        async with KafkaEventProducer(bootstrap_servers=sys.argv[1], topic=sys.argv[2]) as producer:
            await producer.attach(bus)
            await bus.publish(SystemEvent(event_type=EventType.AGENT_STARTED, agent_id="a"))
    assert producer.stats.acknowledged == 1, producer.stats
    assert "opentelemetry" not in sys.modules


asyncio.run(main())
"""


async def test_bus_to_kafka_works_without_opentelemetry_installed(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=1)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WITHOUT_OTEL,
        broker.bootstrap_servers,
        topic,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(60):
        output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()
