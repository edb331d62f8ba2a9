"""Read-only commands leave the cluster as they found it, and learn what a broker lacks read-only.

Each command runs as a user runs it: ``agent-events ...`` in a fresh process (so no cached
broker answer from the test session helps it). Topics and consumer groups are listed before
and after; nothing may be added. On Apache Kafka the commands answer; on Tansu, where the
answer would be wrong, they refuse in one line with exit 2.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from agent_events.agent_runtime.events import EventType, SystemEvent
from agent_events.broker import KafkaCluster, create_topic
from agent_events.broker._process import free_ports
from agent_events.broker.capabilities import BrokerCapabilities
from agent_events.broker.pytest_fixtures import NewTopic, RunningBroker
from agent_events.consumers.capabilities import detect_capabilities
from agent_events.consumers.scan import log_end_offsets, standalone_consumer
from agent_events.producers.config import KafkaConnectionConfig
from agent_events.schemas.codec import encode_event

_CLI_DEADLINE_S = 60.0


async def cluster_state(bootstrap: str) -> tuple[set[str], set[str]]:
    """(topics, consumer groups) the cluster lists."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = set(await admin.list_topics())
        groups = {str(g[0]) for g in await admin.list_consumer_groups()}
    finally:
        await admin.close()
    return topics, groups


async def agent_events(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``agent-events *args`` in a new process; (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from agent_events.cli import main; sys.exit(main())",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    try:
        async with asyncio.timeout(_CLI_DEADLINE_S):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def fill_topic_and_commit_a_group(bootstrap: str, topic: str) -> None:
    """5 records per partition of a 2-partition ``topic``; group ``<topic>-g`` committed 2 and 3."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(10):
            event = SystemEvent(
                event_type=EventType.AGENT_STARTED,
                agent_id="agent",
                session_id=f"session-{i % 2}",
                metadata={"i": i},
            )
            await producer.send_and_wait(topic, encode_event(event), partition=i % 2)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=f"{topic}-g", enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        await consumer.commit({TopicPartition(topic, 0): 2, TopicPartition(topic, 1): 3})
    finally:
        await consumer.stop()


async def topic_with_a_committed_group(broker: RunningBroker, new_topic: NewTopic) -> str:
    topic = await new_topic(partitions=2)
    await fill_topic_and_commit_a_group(broker.bootstrap_servers, topic)
    return topic


def read_only_commands(topic: str, bootstrap: str) -> dict[str, list[str]]:
    an_hour_ago = datetime.fromtimestamp(time.time() - 3600, UTC).isoformat()
    b = ["--bootstrap-servers", bootstrap]
    return {
        "groups list": ["groups", "list", "--json", *b],
        "groups describe": ["groups", "describe", f"{topic}-g", "--json", *b],
        "replay --from-time --dry-run": [
            "replay",
            "-t",
            topic,
            "--from-time",
            an_hour_ago,
            "--dry-run",
            "--json",
            *b,
        ],
        "tail -o s@ms -e": [
            "tail",
            "-t",
            topic,
            "-o",
            f"s@{int((time.time() - 3600) * 1000)}",
            "-e",
            "--json",
            *b,
        ],
    }


async def run_read_only_commands(
    topic: str, bootstrap: str, admin_bootstrap: str, env: dict[str, str] | None = None
) -> dict[str, str]:
    """Each read-only command's stdout; asserts exit 0 and that no topic or group was added."""
    before = await cluster_state(admin_bootstrap)
    outputs: dict[str, str] = {}
    for name, args in read_only_commands(topic, bootstrap).items():
        code, out, err = await agent_events(*args, env=env)
        assert code == 0, (name, err)
        outputs[name] = out
    after = await cluster_state(admin_bootstrap)
    assert after == before
    return outputs


def assert_answers(topic: str, outputs: dict[str, str]) -> None:
    """The commands' answers about the topic and group ``fill_topic_and_commit_a_group`` made."""
    assert {"group": f"{topic}-g", "state": "Empty", "members": 0} in json.loads(
        outputs["groups list"]
    )
    described = json.loads(outputs["groups describe"])
    assert [(p["partition"], p["current_offset"], p["lag"]) for p in described["partitions"]] == [
        (0, 2, 3),
        (1, 3, 2),
    ]
    assert json.loads(outputs["replay --from-time --dry-run"])["records"] == 10
    tailed = [json.loads(line) for line in outputs["tail -o s@ms -e"].splitlines()]
    assert len(tailed) == 10


@pytest.mark.broker_kinds("kafka")
async def test_read_only_commands_answer_on_kafka_and_add_no_topic_or_group(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await topic_with_a_committed_group(broker, new_topic)
    bootstrap = broker.bootstrap_servers
    assert_answers(topic, await run_read_only_commands(topic, bootstrap, bootstrap))


_SASL_USER, _SASL_PASSWORD = "reader", "s3cret-" + uuid.uuid4().hex[:8]


def sasl_listener(port: int, controller_port: int, sasl_port: int) -> dict[str, str]:
    """server.properties overrides: a SASL/PLAIN listener next to the plaintext one."""
    jaas = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{_SASL_USER}" password="{_SASL_PASSWORD}" '
        f'user_{_SASL_USER}="{_SASL_PASSWORD}";'
    )
    return {
        "listeners": (
            f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port},"
            f"SASL_PLAINTEXT://127.0.0.1:{sasl_port}"
        ),
        "advertised.listeners": (
            f"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}"
        ),
        "listener.security.protocol.map": (
            "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
        ),
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas,
    }


@pytest.mark.slow
async def test_read_only_commands_detect_features_with_the_commands_sasl_credentials() -> None:
    port, controller_port, sasl_port = free_ports(3)
    overrides = sasl_listener(port, controller_port, sasl_port)
    async with KafkaCluster.single(
        port=port, controller_port=controller_port, overrides=overrides
    ) as cluster:
        plain = cluster.bootstrap_servers
        topic = await create_topic(plain, f"sasl-{uuid.uuid4().hex[:8]}", partitions=2)
        await fill_topic_and_commit_a_group(plain, topic)
        credentials = {
            "AGENT_EVENTS_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "AGENT_EVENTS_SASL_MECHANISM": "PLAIN",
            "AGENT_EVENTS_SASL_PLAIN_USERNAME": _SASL_USER,
            "AGENT_EVENTS_SASL_PLAIN_PASSWORD": _SASL_PASSWORD,
        }
        outputs = await run_read_only_commands(
            topic, f"127.0.0.1:{sasl_port}", plain, env=credentials
        )
    assert_answers(topic, outputs)


@pytest.mark.broker_kinds("tansu")
async def test_read_only_commands_refuse_in_one_line_on_tansu_and_add_no_topic_or_group(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await topic_with_a_committed_group(broker, new_topic)
    before = await cluster_state(broker.bootstrap_servers)
    for name, args in read_only_commands(topic, broker.bootstrap_servers).items():
        code, out, err = await agent_events(*args)
        assert code == 2, (name, out, err)
        assert len(err.strip().splitlines()) == 1, (name, err)
        assert "run it against Apache Kafka" in err, (name, err)
    after = await cluster_state(broker.bootstrap_servers)
    assert after == before


async def test_detection_from_api_versions_agrees_with_the_write_probe(
    broker: RunningBroker, broker_capabilities: BrokerCapabilities
) -> None:
    detected = await detect_capabilities(
        KafkaConnectionConfig(bootstrap_servers=broker.bootstrap_servers), refresh=True
    )
    assert detected.missing == broker_capabilities.missing


async def test_end_offsets_of_a_multi_record_batch_are_exact_and_checked_by_fetch_only_where_needed(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    await producer.start()
    try:
        batch = producer.create_batch()
        for i in range(7):
            batch.append(key=None, value=f"r{i}".encode(), timestamp=None)
        await (await producer.send_batch(batch, topic, partition=0))
    finally:
        await producer.stop()
    connection = KafkaConnectionConfig(bootstrap_servers=broker.bootstrap_servers)
    tp = TopicPartition(topic, 0)
    async with standalone_consumer(connection) as consumer:
        ends = await log_end_offsets(consumer, [tp])
        fetched = bool(consumer.assignment())
    assert ends == {tp: 7}
    assert fetched == (not (await detect_capabilities(connection)).end_offsets)
