"""Every Python block of the README runs as written, against a real broker.

Each block is a whole program; the test changes only the broker address (and, where the
broker is shared with other tests, a session id or group id) and runs it as a user would.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import uuid
from asyncio.subprocess import PIPE
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from agent_events import EventType, KafkaEventProducer, SystemEvent
from agent_events.broker.broker_pool import RunningBroker
from agent_events.consumers.scan import scan_topic, topic_partitions
from agent_events.producers import TopicSpec, ensure_topics
from agent_events.producers.config import KafkaConnectionConfig
from agent_events.schemas import decode_event

README = Path(__file__).resolve().parents[2] / "README.md"
README_ADDRESS = "127.0.0.1:9092"


def block_under(heading: str) -> str:
    """The first ```python block after ``heading`` in the README."""
    section = README.read_text().split(f"{heading}\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, heading
    return match.group(1)


def every_block() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def as_run_here(code: str, broker: RunningBroker, **replace: str) -> str:
    assert README_ADDRESS in code
    code = code.replace(README_ADDRESS, broker.bootstrap_servers)
    for old, new in replace.items():
        assert old in code, old
        code = code.replace(old, new)
    return code


async def run_program(code: str) -> tuple[int, str, str]:
    """Run ``code`` as ``python -c``; (exit status, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=PIPE, stderr=PIPE
    )
    async with asyncio.timeout(90):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def readme_topics_exist(broker: RunningBroker) -> None:
    """What the README's walkthrough does first: `agent-events topics create ...`."""
    connection = KafkaConnectionConfig(bootstrap_servers=broker.bootstrap_servers)
    await ensure_topics(
        connection, [TopicSpec("agent.events", 6), TopicSpec("agent.events.dlq", 6)]
    )


async def events_keyed(bootstrap: str, topic: str, key: str) -> list[SystemEvent]:
    """Every event of ``topic`` whose record key is ``key``, from the beginning to the end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topic)
        async with asyncio.timeout(30):
            return [
                decode_event(record.value)
                async for record in scan_topic(consumer, tps)
                if record.key == key.encode()
            ]
    finally:
        await consumer.stop()


def test_every_python_block_of_the_readme_is_tested_here() -> None:
    tested = {
        "## First example: the in-process bus",  # tests/unit/test_readme.py
        "## Streaming to Kafka",
        "### The local broker, or your own cluster",
        "## Consuming: the same handlers as a service",
        "### Re-drive from the DLQ",
        "## Your own services: App",  # tests/integration/test_app_run.py
        "### Schema Registry wire format",  # tests/integration/test_schema_registry.py
    }
    assert len(every_block()) == len(tested)
    assert {block_under(heading) for heading in tested} == set(every_block())


async def test_streaming_block_puts_every_event_of_the_agent_on_kafka(
    broker: RunningBroker,
) -> None:
    session = f"sess_{uuid.uuid4().hex}"
    code = as_run_here(block_under("## Streaming to Kafka"), broker, sess_abc=session)

    await readme_topics_exist(broker)

    status, out, err = await run_program(code)

    assert status == 0, err
    acknowledged = int(re.findall(r"(\d+) events acknowledged", out)[-1])
    on_topic = await events_keyed(broker.bootstrap_servers, "agent.events", session)
    types = [event.event_type for event in on_topic]
    assert EventType.AGENT_STARTED in types
    assert EventType.AGENT_COMPLETED in types
    assert len(on_topic) == acknowledged


def test_cluster_settings_block_builds_a_producer_without_connecting() -> None:
    code = block_under("### The local broker, or your own cluster")
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


async def group_caught_up(bootstrap: str, group: str, topic: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        tps = await topic_partitions(consumer, topic)
        end = await consumer.end_offsets(tps)
        return all(
            committed.get(tp) is not None and committed[tp].offset >= end[tp]
            for tp in tps
            if end[tp]
        )
    finally:
        await consumer.stop()
        await admin.close()


@pytest.mark.needs("group_offsets")
async def test_consumer_block_runs_the_handler_and_stops_cleanly_on_sigterm(
    broker: RunningBroker,
) -> None:
    group = f"readme-{uuid.uuid4().hex[:8]}"
    agent = f"agent-{uuid.uuid4().hex[:8]}"
    code = as_run_here(
        block_under("## Consuming: the same handlers as a service"),
        broker,
        **{'group_id="metrics"': f'group_id="{group}"'},
    )
    await readme_topics_exist(broker)
    async with KafkaEventProducer(bootstrap_servers=broker.bootstrap_servers) as producer:
        for _ in range(3):
            event = SystemEvent(
                event_type=EventType.AGENT_COMPLETED,
                agent_id=agent,
                session_id=f"s-{agent}",
                execution_time_ms=12,
            )
            await producer.send_and_wait(event)

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=PIPE, stderr=PIPE
    )
    try:
        async with asyncio.timeout(90):
            while not await group_caught_up(broker.bootstrap_servers, group, "agent.events"):
                assert process.returncode is None, "the service exited before catching up"
                await asyncio.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    assert f"'{agent}': 3" in out.decode()


async def test_redrive_block_reports_what_it_would_send(broker: RunningBroker) -> None:
    code = as_run_here(block_under("### Re-drive from the DLQ"), broker)
    await readme_topics_exist(broker)
    status, out, err = await run_program(code)
    assert status == 0, err
    assert "RedriveReport(" in out
