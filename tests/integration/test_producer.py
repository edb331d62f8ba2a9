"""KafkaEventProducer against real brokers: keys, partitions, headers, order, failures."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import defaultdict
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from agent_events.agent_runtime.errors import BrokerUnavailable, EncodeError, RecordTooLarge
from agent_events.agent_runtime.event_bus import EventBus, EventType, SystemEvent
from agent_events.agent_runtime.orchestration.executor import (
    AgentConfig,
    AgentContext,
    AgentExecutor,
)
from agent_events.broker.pytest_fixtures import NewTopic, RunningBroker
from agent_events.producers import (
    CONTENT_TYPE_HEADER,
    EVENT_TYPE_HEADER,
    SEQUENCE_HEADER,
    KafkaEventProducer,
    partition_for_key,
)
from agent_events.producers.headers import header_value
from agent_events.schemas.codec import CONTENT_TYPE, decode_event


async def read_all(bootstrap: str, topic: str, expected: int) -> list:  # type: ignore[type-arg]
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records = []
    try:
        while len(records) < expected:
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, f"only {len(records)} of {expected} records arrived within 10 s"
            for recs in batch.values():
                records.extend(recs)
    finally:
        await consumer.stop()
    return records


def session_event(session: str, i: int) -> SystemEvent:
    return SystemEvent(
        event_type=EventType.AGENT_COMPLETED,
        agent_id="agent-1",
        session_id=session,
        execution_time_ms=i,
        metadata={"seq": i, "nested": {"list": [1, 2.5, None, "x"]}},
    )


async def test_events_are_keyed_by_session_partitioned_like_java_and_in_order(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=6)
    sessions = [f"session-{n}" for n in range(20)]
    sent = [session_event(s, i) for i in range(10) for s in sessions]
    async with KafkaEventProducer(
        bootstrap_servers=broker.bootstrap_servers, topic=topic
    ) as producer:
        for event in sent:
            await producer.send(event)
        await producer.flush()
    assert producer.stats.acknowledged == len(sent)
    records = await read_all(broker.bootstrap_servers, topic, len(sent))
    by_session: dict[str, list[int]] = defaultdict(list)
    originals = {e.event_id: e for e in sent}
    for record in records:
        event = decode_event(record.value)
        assert event == originals[event.event_id]
        assert record.key == event.session_id.encode()
        assert record.partition == partition_for_key(record.key, 6)
        assert header_value(record.headers, EVENT_TYPE_HEADER) == b"agent_completed"
        assert header_value(record.headers, CONTENT_TYPE_HEADER) == CONTENT_TYPE.encode()
        assert record.timestamp == int(event.timestamp.timestamp() * 1000)
        seq = int(header_value(record.headers, SEQUENCE_HEADER) or b"0")
        by_session[event.session_id].append(seq)
        assert seq == int(event.metadata["seq"]) + 1  # type: ignore[arg-type]
    assert all(seqs == list(range(1, 11)) for seqs in by_session.values())


async def test_event_without_session_is_keyed_by_agent(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=3)
    async with KafkaEventProducer(
        bootstrap_servers=broker.bootstrap_servers, topic=topic
    ) as producer:
        result = await producer.send_and_wait(
            SystemEvent(event_type=EventType.AGENT_STARTED, agent_id="lonely-agent")
        )
    assert result.partition == partition_for_key(b"lonely-agent", 3)
    [record] = await read_all(broker.bootstrap_servers, topic, 1)
    assert record.key == b"lonely-agent"


async def test_executor_streams_every_event_to_kafka_with_one_line(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=3)
    async with (
        EventBus() as bus,
        KafkaEventProducer(bootstrap_servers=broker.bootstrap_servers, topic=topic) as producer,
    ):
        await producer.attach(bus)
        executor = AgentExecutor(
            "chatbot", config=AgentConfig(name="chatbot", model="gpt-3.5-turbo")
        )
        executor.set_event_bus(bus)
        await executor.execute(AgentContext(task="Hello", session_id="sess-abc", user_id="u1"))
        await bus.join()
        await producer.flush()
    records = await read_all(broker.bootstrap_servers, topic, 2)
    types = [decode_event(r.value).event_type for r in sorted(records, key=lambda r: r.offset)]
    assert types[0] is EventType.AGENT_STARTED
    assert types[-1] is EventType.AGENT_COMPLETED
    assert {r.key for r in records} == {b"sess-abc"}


async def test_record_over_the_size_limit_fails_alone_and_the_producer_goes_on(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=1)
    huge = SystemEvent(event_type=EventType.CUSTOM, agent_id="a", metadata={"blob": "x" * 300_000})
    async with KafkaEventProducer(
        bootstrap_servers=broker.bootstrap_servers, topic=topic, max_request_size=100_000
    ) as producer:
        with pytest.raises(RecordTooLarge, match="max_request_size"):
            await producer.send(huge)
        result = await producer.send_and_wait(session_event("s", 1))
    assert result.offset == 0
    assert producer.stats.failed == 1


async def test_event_that_cannot_be_encoded_raises_and_the_producer_goes_on(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=1)
    bad = SystemEvent(event_type=EventType.CUSTOM, agent_id="a", metadata={"x": float("nan")})
    async with KafkaEventProducer(
        bootstrap_servers=broker.bootstrap_servers, topic=topic
    ) as producer:
        with pytest.raises(EncodeError):
            await producer.send(bad)
        result = await producer.send_and_wait(session_event("s", 1))
    assert result.offset == 0


async def test_unreachable_broker_at_start_gives_a_typed_error_after_backoff() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    producer = KafkaEventProducer(bootstrap_servers=f"127.0.0.1:{port}", connect_timeout_s=1.5)
    with pytest.raises(BrokerUnavailable, match=f"127.0.0.1:{port}") as info:
        await producer.start()
    assert "attempts" in str(info.value)


async def test_broker_without_idempotence_is_announced_once_and_production_goes_on(
    broker: RunningBroker, new_topic: NewTopic, caplog: pytest.LogCaptureFixture
) -> None:
    topic = await new_topic(partitions=1)
    with caplog.at_level(logging.WARNING, logger="agent_events.producers.producer"):
        async with KafkaEventProducer(
            bootstrap_servers=broker.bootstrap_servers, topic=topic
        ) as producer:
            await producer.send_and_wait(session_event("s", 1))
    refused = [r for r in caplog.records if "WITHOUT idempotence" in r.getMessage()]
    if broker.kind == "tansu":
        assert not producer.idempotent
        assert len(refused) == 1
    else:
        assert producer.idempotent
        assert refused == []


async def test_concurrent_senders_filling_small_batches_lose_no_record(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    """Senders that find a batch full wait while it is handed off; another sender opens the
    next one meanwhile: every record still lands, once, each sender's in its order."""
    topic = await new_topic(partitions=1)
    async with KafkaEventProducer(
        bootstrap_servers=broker.bootstrap_servers, topic=topic, max_batch_size=1024
    ) as producer:

        async def sender(n: int) -> list[Any]:
            return [await producer.send(session_event(f"s{n}", i)) for i in range(40)]

        futures = [f for fs in await asyncio.gather(*(sender(n) for n in range(25))) for f in fs]
        results = await asyncio.wait_for(asyncio.gather(*futures), 60)
    assert len({r.offset for r in results}) == 1000
    records = await read_all(broker.bootstrap_servers, topic, 1000)
    seqs: dict[str, list[int]] = defaultdict(list)
    for record in sorted(records, key=lambda r: r.offset):
        event = decode_event(record.value)
        seqs[str(event.session_id)].append(int(event.metadata["seq"]))  # type: ignore[arg-type]
    assert len(seqs) == 25
    assert all(s == list(range(40)) for s in seqs.values())


async def test_without_linger_records_sent_one_by_one_share_batches_while_one_is_in_flight(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    """With ``linger_ms=0`` each record used to become its own batch, and a partition took
    one record per broker round trip: at 5,000 events/s acknowledgements fell 0.6 s behind.
    A batch now stays open while the one before it waits for aiokafka."""
    topic = await new_topic(partitions=1)
    async with KafkaEventProducer(
        bootstrap_servers=broker.bootstrap_servers, topic=topic, linger_ms=0
    ) as producer:
        batches = 0
        send_batch = producer._producer.send_batch

        async def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal batches
            batches += 1
            return await send_batch(*args, **kwargs)

        producer._producer.send_batch = counting
        futures = []
        for i in range(1_000):
            futures.append(await producer.send(session_event(f"s{i % 10}", i)))
            await asyncio.sleep(0)  # one record per loop turn, as a paced agent sends them
        await asyncio.gather(*futures)
    assert batches < 200, f"{batches} batches for 1,000 records"  # was 334
