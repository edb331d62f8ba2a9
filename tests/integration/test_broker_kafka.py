"""Apache Kafka started by our own code: data kept across restarts, failures with log tails."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from agent_events.agent_runtime.errors import BrokerSetupError
from agent_events.broker import KafkaCluster, create_topic

pytestmark = pytest.mark.slow


async def _read_all(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        values: list[bytes] = []
        while len(values) < expected:
            batch = await consumer.getmany(timeout_ms=10_000)
            if not batch:
                break  # nothing for 10 s: the records are not there
            values.extend(rec.value for recs in batch.values() for rec in recs if rec.value)
        return values
    finally:
        await consumer.stop()


async def test_restarted_node_keeps_the_records_written_before_the_stop(tmp_path: Path) -> None:
    data_dir = tmp_path / "kafka"
    sent = [f"record-{i}".encode() for i in range(5)]
    async with KafkaCluster.single(data_dir=data_dir) as cluster:
        await create_topic(cluster.bootstrap_servers, "kept", partitions=1)
        producer = AIOKafkaProducer(bootstrap_servers=cluster.bootstrap_servers, acks="all")
        await producer.start()
        try:
            for value in sent:
                await producer.send_and_wait("kept", value)
        finally:
            await producer.stop()
    assert not cluster.nodes[0].running

    async with KafkaCluster.single(data_dir=data_dir) as restarted:
        assert await _read_all(restarted.bootstrap_servers, "kept", len(sent)) == sent


async def test_invalid_config_value_raises_setup_error_naming_it(tmp_path: Path) -> None:
    cluster = KafkaCluster.single(data_dir=tmp_path / "k", overrides={"num.partitions": "many"})
    with pytest.raises(BrokerSetupError, match=r"num\.partitions"):
        async with cluster:
            pass
    assert not cluster.nodes[0].running


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


async def test_node_that_exits_at_startup_raises_with_its_server_log_tail(
    tmp_path: Path, listening_port: int
) -> None:
    cluster = KafkaCluster.single(data_dir=tmp_path / "k", port=listening_port)
    with pytest.raises(BrokerSetupError) as info:
        async with cluster:
            pass
    message = str(info.value)
    assert "server.log" in message
    assert "Address already in use" in message
    assert not cluster.nodes[0].running
