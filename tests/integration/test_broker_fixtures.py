"""The shared broker fixtures: every test here runs once per broker kind ([kafka], [tansu])."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from agent_events.agent_runtime.errors import UnsupportedByBroker
from agent_events.broker import FEATURES, BrokerCapabilities, RunningBroker, require
from agent_events.broker.pytest_fixtures import NewTopic


async def test_broker_serves_produce_and_consume(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for i in range(3):
            await producer.send_and_wait(topic, f"v{i}".encode(), key=b"session-1")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        got: list[bytes] = []
        while len(got) < 3:
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, f"no records within 10 s; got {got}"
            got.extend(rec.value for recs in batch.values() for rec in recs if rec.value)
    finally:
        await consumer.stop()
    assert got == [b"v0", b"v1", b"v2"]


async def test_new_topic_shows_every_partition_in_metadata_at_once(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=4)
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers)
    await consumer.start()
    try:
        end = await consumer.end_offsets([TopicPartition(topic, p) for p in range(4)])
    finally:
        await consumer.stop()
    assert sorted(tp.partition for tp in end) == [0, 1, 2, 3]


async def test_second_new_topic_gets_a_distinct_name(new_topic: NewTopic) -> None:
    first = await new_topic(partitions=1)
    second = await new_topic(partitions=1)
    assert first != second


def test_topic_name_is_a_valid_kafka_name_derived_from_the_test(topic_name: str) -> None:
    assert topic_name.startswith("test_topic_name_is_a_valid_kafka_name_derived_from_the_test")
    assert len(topic_name) <= 249
    assert all(c.isalnum() or c in "._-" for c in topic_name)


@pytest.mark.broker_kinds("kafka")
def test_apache_kafka_has_every_probed_feature(broker_capabilities: BrokerCapabilities) -> None:
    assert broker_capabilities.missing == []


@pytest.mark.broker_kinds("tansu")
def test_tansu_lacks_the_features_the_notes_list(broker_capabilities: BrokerCapabilities) -> None:
    assert broker_capabilities.missing == list(FEATURES)
    with pytest.raises(UnsupportedByBroker, match="replay from a timestamp"):
        require(broker_capabilities, "offsets_for_times", operation="replay --from-time")


@pytest.mark.broker_kinds("tansu")
async def test_tansu_still_serves_after_the_probes_that_break_its_connections(
    broker: RunningBroker, broker_capabilities: BrokerCapabilities, new_topic: NewTopic
) -> None:
    assert not broker_capabilities.delete_records
    topic = await new_topic(partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, b"after-probe")
    finally:
        await producer.stop()
    assert meta.offset == 0


@pytest.mark.needs("transactions")
async def test_needs_marker_runs_the_test_only_where_transactions_work(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    assert broker.kind == "kafka"  # Tansu lacks transactions, so this must be skipped there
    topic = await new_topic(partitions=1)
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap_servers, transactional_id=f"tx-{topic}"
    )
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send_and_wait(topic, b"in-a-transaction")
    finally:
        await producer.stop()
