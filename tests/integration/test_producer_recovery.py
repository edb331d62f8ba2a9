"""The producer goes on after the broker refuses a record (old: every later send failed).

An idempotent producer numbers its batches per partition. When the broker refuses a
batch without writing it (a timestamp outside ``message.timestamp.after.max.ms``, a
record over the topic's ``max.message.bytes``), aiokafka had already advanced the
partition's sequence, so every later batch to that partition failed with
``OutOfOrderSequenceNumber`` until the process restarted. These tests refuse one
record the way the broker does, then send 100 more to the same partition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka.errors import MessageSizeTooLargeError

from agent_events.agent_runtime.errors import ProduceError
from agent_events.agent_runtime.event_bus import EventBus, EventType, SystemEvent
from agent_events.broker.pytest_fixtures import NewTopic, RunningBroker
from agent_events.producers import KafkaEventProducer
from agent_events.schemas.codec import decode_event
from tests.conftest import FaultLedger
from tests.integration.test_producer import read_all

# Tansu checks neither record timestamps nor max.message.bytes.
pytestmark = [pytest.mark.broker_kinds("kafka"), pytest.mark.faults]

AFTER = 100


async def wait_for(condition: Callable[[], bool], deadline_s: float = 30) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not condition():
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.05)


def event(i: int, *, session: str = "s-1", **fields: object) -> SystemEvent:
    base: dict[str, object] = {"agent_id": "agent-1", "session_id": session, "metadata": {"seq": i}}
    return SystemEvent(event_type=EventType.AGENT_COMPLETED, **{**base, **fields})  # type: ignore[arg-type]


async def send_after(producer: KafkaEventProducer, start: int) -> list[int]:
    """Send ``AFTER`` events one batch at a time; returns their offsets."""
    futures = [await producer.send(event(start + i)) for i in range(AFTER)]
    results = await asyncio.gather(*futures)
    return [r.offset for r in results]


async def stored_seqs(broker: RunningBroker, topic: str, expected: int) -> list[int]:
    records = await read_all(broker.bootstrap_servers, topic, expected)
    return [decode_event(r.value).metadata["seq"] for r in sorted(records, key=lambda r: r.offset)]


async def test_after_a_refused_timestamp_the_partition_takes_every_later_send(
    broker: RunningBroker, new_topic: NewTopic, fault_ledger: FaultLedger
) -> None:
    topic = await new_topic(partitions=1, configs={"message.timestamp.after.max.ms": "60000"})
    ahead = event(-1, timestamp=datetime.now(UTC) + timedelta(minutes=10))
    async with KafkaEventProducer(
        bootstrap_servers=broker.bootstrap_servers, topic=topic
    ) as producer:
        await producer.send_and_wait(event(0))
        with pytest.raises(ProduceError, match="INVALID_TIMESTAMP"):
            await producer.send_and_wait(ahead)
        offsets = await send_after(producer, 1)
    stored = await stored_seqs(broker, topic, AFTER + 1)
    fault_ledger(
        "producer: broker refuses one record (INVALID_TIMESTAMP), 100 sends follow",
        sent=AFTER + 2,
        acknowledged=producer.stats.acknowledged,
        consumed=len(stored),
        lost=producer.stats.acknowledged - len(stored),
        duplicated=len(stored) - len(set(stored)),
    )
    assert offsets == list(range(1, AFTER + 1))
    assert producer.stats.failed == 1
    assert stored == list(range(AFTER + 1))


async def test_after_a_record_over_the_topic_limit_the_partition_takes_every_later_send(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    # Under the producer's max_request_size (1 MiB), over the topic's limit; batches of
    # small records stay under it (max_batch_size 256 KiB), so only the huge one is refused.
    topic = await new_topic(partitions=1, configs={"max.message.bytes": "300000"})
    huge = event(-1, metadata={"seq": -1, "blob": "x" * 400_000})
    async with KafkaEventProducer(
        bootstrap_servers=broker.bootstrap_servers, topic=topic
    ) as producer:
        await producer.send_and_wait(event(0))
        refused = await producer.send(huge)
        offsets = await send_after(producer, 1)  # queued behind it, not waiting for its answer
        with pytest.raises(MessageSizeTooLargeError):
            await refused
    assert offsets == list(range(1, AFTER + 1))
    assert await stored_seqs(broker, topic, AFTER + 1) == list(range(AFTER + 1))


async def test_a_refused_event_from_the_bus_is_reported_with_its_reason_and_the_rest_flow(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=1, configs={"message.timestamp.after.max.ms": "60000"})
    reported: list[tuple[SystemEvent, BaseException]] = []
    ahead = event(-1, timestamp=datetime.now(UTC) + timedelta(minutes=10))
    async with (
        EventBus() as bus,
        KafkaEventProducer(
            bootstrap_servers=broker.bootstrap_servers,
            topic=topic,
            on_delivery_error=lambda e, exc: reported.append((e, exc)),
        ) as producer,
    ):
        await producer.attach(bus)
        await bus.publish(ahead)  # alone in its batch: a refused batch fails as a whole
        await wait_for(lambda: bool(reported))
        for i in range(AFTER):
            await bus.publish(event(i))
    assert [(e.event_id, type(exc)) for e, exc in reported] == [(ahead.event_id, ProduceError)]
    assert "INVALID_TIMESTAMP" in str(reported[0][1])
    assert producer.stats.acknowledged == AFTER
    assert await stored_seqs(broker, topic, AFTER) == list(range(AFTER))
