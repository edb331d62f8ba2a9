"""The broker fixtures as users get them: a pytest plugin for their own tests on a real broker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

USER_TESTS = """
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition


async def test_records_reach_the_real_broker(broker, new_topic):
    topic = await new_topic(partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello", partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        assert (await consumer.end_offsets([tp]))[tp] == 1
    finally:
        await consumer.stop()


class TestOwnBrokerFixture:
    @pytest.fixture
    def broker(self):
        return "my own broker"

    def test_a_fixture_of_the_same_name_is_left_alone(self, broker):
        assert broker == "my own broker"
"""


def test_users_own_tests_run_on_a_real_broker_through_the_plugin(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-v",
            "-p",
            "no:cacheprovider",
            "-p",
            "agent_events.broker.pytest_fixtures",
            "-o",
            "asyncio_mode=auto",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            "--broker-kinds",
            "tansu",
            "--strict-markers",
            "test_user.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout, result.stdout
    assert "test_records_reach_the_real_broker[tansu] PASSED" in result.stdout
    assert "test_a_fixture_of_the_same_name_is_left_alone PASSED" in result.stdout
