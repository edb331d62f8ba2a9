"""The producer on a 3-node cluster (RF 3, min ISR 2) while brokers die under it.

Oracle (Kafka's system tests): every event whose send was acknowledged is on the
topic afterwards; duplicates are counted (the idempotent producer should make none).
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from aiokafka import AIOKafkaConsumer

from agent_events.agent_runtime.event_bus import EventType, SystemEvent
from agent_events.broker import KafkaCluster, create_topic
from agent_events.producers import KafkaEventProducer
from agent_events.schemas.codec import decode_event
from tests.conftest import FaultLedger

pytestmark = [pytest.mark.slow, pytest.mark.faults]


async def read_event_ids(bootstrap: str, topic: str, expected: int) -> list[str]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    ids: list[str] = []
    try:
        while len(ids) < expected:
            batch = await consumer.getmany(timeout_ms=15_000)
            if not batch:
                break
            ids.extend(str(decode_event(r.value).event_id) for recs in batch.values() for r in recs)
    finally:
        await consumer.stop()
    return ids


async def test_no_acknowledged_event_is_lost_when_the_leader_then_the_controller_die(
    kafka_cluster: KafkaCluster, topic_name: str, fault_ledger: FaultLedger
) -> None:
    bootstrap = kafka_cluster.bootstrap_servers
    await create_topic(bootstrap, topic_name, partitions=6, replication_factor=3)
    acked: list[str] = []
    failed = 0

    kills_done = asyncio.Event()
    sent = 0

    async def produce_run() -> None:
        nonlocal failed, sent
        async with KafkaEventProducer(
            bootstrap_servers=bootstrap, topic=topic_name, request_timeout_ms=30_000
        ) as producer:
            pending = []
            i = 0
            while not kills_done.is_set():  # produce before, during and after both kills
                i += 1
                sent += 1
                event = SystemEvent(
                    event_type=EventType.AGENT_COMPLETED,
                    agent_id="a",
                    session_id=f"s{i % 50}",
                    metadata={"i": i},
                )
                pending.append((event, await producer.send(event)))
                if i % 50 == 0:
                    await asyncio.sleep(0.05)  # about 1,000 events/s, so the kills land mid-run
            for event, future in pending:
                try:
                    await future
                    acked.append(str(event.event_id))
                except Exception:
                    failed += 1

    run = asyncio.create_task(produce_run())
    await asyncio.sleep(0.5)
    leader = await kafka_cluster.partition_leader(topic_name, 0)
    await kafka_cluster.kill_node(leader)
    await asyncio.sleep(1.0)
    await kafka_cluster.restart_node(
        leader
    )  # back to 3 nodes, so min ISR 2 holds after the next kill
    controller = await kafka_cluster.active_controller()
    await kafka_cluster.kill_node(controller)
    await asyncio.sleep(2.0)
    kills_done.set()
    async with asyncio.timeout(120):
        await run
    ids = await read_event_ids(kafka_cluster.bootstrap_servers, topic_name, len(acked))
    lost = set(acked) - set(ids)
    duplicates = sum(n - 1 for n in Counter(ids).values() if n > 1)
    fault_ledger(
        "producer: partition leader, then controller SIGKILLed (3 nodes)",
        sent=sent,
        acknowledged=len(acked),
        consumed=len(ids),
        lost=len(lost),
        duplicated=duplicates,
    )
    assert lost == set()
    assert duplicates == 0, "the idempotent producer must not write a record twice"
    assert len(acked) + failed == sent
    assert len(acked) > 0
