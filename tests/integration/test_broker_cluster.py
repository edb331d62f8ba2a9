"""The three-node cluster fixture: node kills, failover and rejoining, as failover tests need."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from agent_events.broker import KafkaCluster, create_topic

pytestmark = pytest.mark.slow

_RECORDS = 60


async def _send_all(bootstrap: str, topic: str, values: list[bytes]) -> set[bytes]:
    """Send every value idempotently with acks=all; return the acknowledged ones."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, request_timeout_ms=30_000
    )
    await producer.start()
    acked: set[bytes] = set()
    try:
        futures = [(v, await producer.send(topic, v, key=v[-1:])) for v in values]
        for value, fut in futures:
            await fut
            acked.add(value)
    finally:
        await producer.stop()
    return acked


async def _consume_all(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        got: list[bytes] = []
        while len(got) < expected:
            batch = await consumer.getmany(timeout_ms=15_000)
            if not batch:
                break
            got.extend(rec.value for recs in batch.values() for rec in recs if rec.value)
        return got
    finally:
        await consumer.stop()


async def test_cluster_acknowledges_acks_all_sends_with_a_partition_leader_killed(
    kafka_cluster: KafkaCluster, topic_name: str
) -> None:
    bootstrap = kafka_cluster.bootstrap_servers
    await create_topic(bootstrap, topic_name, partitions=6, replication_factor=3)
    victim = await kafka_cluster.partition_leader(topic_name, 0)

    await kafka_cluster.kill_node(victim)

    values = [f"r{i:03d}".encode() for i in range(_RECORDS)]
    acked = await _send_all(bootstrap, topic_name, values)
    assert acked == set(values)
    consumed = await _consume_all(bootstrap, topic_name, len(values))
    assert sorted(consumed) == sorted(values)  # nothing lost, nothing duplicated
    assert await kafka_cluster.partition_leader(topic_name, 0) not in (victim, -1)


async def test_killed_controller_is_replaced_and_rejoins_every_isr_after_restart(
    kafka_cluster: KafkaCluster, topic_name: str
) -> None:
    bootstrap = kafka_cluster.bootstrap_servers
    await create_topic(bootstrap, topic_name, partitions=3, replication_factor=3)
    victim = await kafka_cluster.active_controller()

    await kafka_cluster.kill_node(victim)
    successor = await kafka_cluster.active_controller()
    assert successor != victim
    assert successor in kafka_cluster.running_node_ids

    await kafka_cluster.restart_node(victim)
    deadline = time.monotonic() + 30
    while True:
        states = [await kafka_cluster.describe_partition(topic_name, p) for p in range(3)]
        if all(victim in state.isr for state in states):
            break
        assert time.monotonic() < deadline, f"node {victim} not back in every ISR: {states}"
        await asyncio.sleep(0.2)
