"""value_format="confluent" against a real Apicurio Registry and real Kafka brokers.

The registry is the ``schema_registry`` fixture (Apicurio Registry built and started by
``agent_events.broker.registry``); records are checked with plain aiokafka, plain httpx and
plain fastavro, so the wire format is verified independently of our own codec.
"""

# The fixture is imported for checkouts where the pytest11 entry point is not installed yet;
# the tests' parameters of the same name are that fixture.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastavro import parse_schema, schemaless_reader
from kafka_support import produce
from test_consumer_service import run_until
from test_producer import read_all, session_event
from test_readme_blocks import as_run_here, block_under, run_program
from window_helpers import as_windows, read_aggregates, running, stream, tumbling_oracle

from agent_events.agent_runtime.errors import KafkaError, UnknownSchemaError
from agent_events.agent_runtime.event_bus import SystemEvent
from agent_events.broker.pytest_fixtures import NewTopic, RunningBroker
from agent_events.broker.registry import CCOMPAT_PATH, SchemaRegistryServer
from agent_events.broker.registry_fixtures import schema_registry  # noqa: F401
from agent_events.consumers import ConsumerService, read_dead_letters
from agent_events.producers import CONTENT_TYPE_HEADER
from agent_events.producers.config import KafkaConnectionConfig
from agent_events.producers.headers import header_value
from agent_events.schemas import CONFLUENT_CONTENT_TYPE, EventCodec, encode_event

pytestmark = pytest.mark.broker_kinds("kafka")

CLI = [sys.executable, "-c", "import sys; from agent_events.cli import main; sys.exit(main())"]


def access_log_count(registry: SchemaRegistryServer, method: str, path: str) -> int:
    """Requests the registry itself logged (its access log), not what our client thinks."""
    needle = f'method="{method}" path="{CCOMPAT_PATH}{path}"'
    return registry.log_path.read_text(errors="replace").count(needle)


async def produce_registry_framed(
    broker: RunningBroker, registry: SchemaRegistryServer, topic: str, events: list[SystemEvent]
) -> None:
    """Produce ``events`` with our producer in the registry wire format."""
    await produce(
        broker.bootstrap_servers,
        topic,
        events,
        value_format="confluent",
        schema_registry_url=registry.url,
    )


def registry_consumer(
    broker: RunningBroker, topic: str, url: str, handler: Any, **options: Any
) -> ConsumerService:
    """A consumer service of group ``<topic>-g`` reading the registry format from ``url``."""
    options.setdefault("dlq_topic", None)
    return ConsumerService(
        bootstrap_servers=broker.bootstrap_servers,
        topics=[topic],
        group_id=f"{topic}-g",
        handlers=[handler],
        value_format="confluent",
        schema_registry_url=url,
        **options,
    )


async def test_values_carry_the_registry_id_and_decode_with_plain_fastavro(
    broker: RunningBroker, new_topic: NewTopic, schema_registry: SchemaRegistryServer
) -> None:
    topic = await new_topic(partitions=3)
    sent = [session_event(f"s{s}", i) for i in range(5) for s in range(4)]
    await produce_registry_framed(broker, schema_registry, topic, sent)
    async with httpx.AsyncClient(base_url=schema_registry.url) as http:
        latest = (await http.get(f"/subjects/{topic}-value/versions/latest")).json()
        by_id = (await http.get(f"/schemas/ids/{latest['id']}")).json()
    writer = parse_schema(json.loads(by_id["schema"]))
    originals = {e.event_id: e for e in sent}
    records = await read_all(broker.bootstrap_servers, topic, len(sent))
    for record in records:
        value: bytes = record.value
        assert value[0] == 0
        assert int.from_bytes(value[1:5], "big") == latest["id"]
        body = io.BytesIO(value[5:])
        decoded = schemaless_reader(body, writer, None)
        assert body.tell() == len(value) - 5
        event = originals[decoded["event_id"]]
        assert decoded == EventCodec.to_record(event)
        assert json.loads(decoded["metadata"]) == event.metadata
        content_type = header_value(record.headers, CONTENT_TYPE_HEADER)
        assert content_type == CONFLUENT_CONTENT_TYPE.encode()


async def test_consumer_service_decodes_both_framings_back_to_equal_events(
    broker: RunningBroker, new_topic: NewTopic, schema_registry: SchemaRegistryServer
) -> None:
    topic = await new_topic(partitions=2)
    confluent = [session_event(f"c{s}", i) for i in range(10) for s in range(3)]
    single_object = [session_event(f"a{s}", i) for i in range(5) for s in range(2)]
    await produce_registry_framed(broker, schema_registry, topic, confluent)
    await produce(broker.bootstrap_servers, topic, single_object)  # the default framing
    handled: list[SystemEvent] = []

    async def collect(event: SystemEvent) -> None:
        handled.append(event)

    expected = len(confluent) + len(single_object)
    async with registry_consumer(broker, topic, schema_registry.url, collect) as service:
        await run_until(service, lambda: len(handled) >= expected)
        assert service.processor.stats.decode_errors == 0
    assert sorted(handled, key=lambda e: e.event_id) == sorted(
        confluent + single_object, key=lambda e: e.event_id
    )


async def test_unknown_schema_id_is_dead_lettered_and_the_partition_moves_on(
    broker: RunningBroker, new_topic: NewTopic, schema_registry: SchemaRegistryServer
) -> None:
    topic = await new_topic(partitions=1)
    dlq = await new_topic(partitions=1, name=f"{topic}.dlq")
    before, after = session_event("s", 0), session_event("s", 1)
    body = encode_event(before)[10:]  # a valid Avro body behind an id nobody registered
    unknown = b"\x00" + (2_000_000_000).to_bytes(4, "big") + body
    await produce_registry_framed(broker, schema_registry, topic, [before])
    raw = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    await raw.start()
    try:
        await raw.send_and_wait(topic, unknown, key=b"s")
    finally:
        await raw.stop()
    await produce_registry_framed(broker, schema_registry, topic, [after])
    handled: list[SystemEvent] = []

    async def collect(event: SystemEvent) -> None:
        handled.append(event)

    async with registry_consumer(
        broker, topic, schema_registry.url, collect, dlq_topic=dlq
    ) as service:
        await run_until(service, lambda: len(handled) >= 2)
        assert service.processor.stats.decode_errors == 1
    assert handled == [before, after]
    connection = KafkaConnectionConfig(bootstrap_servers=broker.bootstrap_servers)
    (letter,) = [d async for d in read_dead_letters(connection, dlq)]
    assert letter.value == unknown
    assert letter.errors["stage"] == "decode"
    assert letter.errors["exception.class.name"].endswith(UnknownSchemaError.__name__)
    assert "2000000000" in letter.errors["exception.message"]


async def test_a_thousand_events_cost_one_registration_and_one_lookup(
    broker: RunningBroker, new_topic: NewTopic, schema_registry: SchemaRegistryServer
) -> None:
    topic = await new_topic(partitions=3)
    sent = [session_event(f"s{i % 50}", i) for i in range(1000)]
    await produce_registry_framed(broker, schema_registry, topic, sent)
    handled = 0

    async def count(event: SystemEvent) -> None:
        nonlocal handled
        handled += 1

    async with registry_consumer(broker, topic, schema_registry.url, count) as service:
        await run_until(service, lambda: handled >= len(sent))
    schema_id = int.from_bytes((await read_all(broker.bootstrap_servers, topic, 1))[0].value[1:5])
    registrations = f"/subjects/{topic}-value/versions"
    deadline = time.monotonic() + 5  # the access log is written asynchronously
    while access_log_count(schema_registry, "POST", registrations) < 1:
        assert time.monotonic() < deadline, "the registry logged no registration"
        await asyncio.sleep(0.1)
    assert access_log_count(schema_registry, "POST", registrations) == 1
    # Ids are shared across subjects; other tests may have fetched this id too, so count
    # what this test's consumer asked: its one client.
    codec = service.processor._codec
    assert codec.client.requests == 1  # type: ignore[attr-defined]
    assert access_log_count(schema_registry, "GET", f"/schemas/ids/{schema_id}") >= 1


async def test_registry_outage_while_consuming_stops_the_service_without_skipping(
    broker: RunningBroker, new_topic: NewTopic, schema_registry: SchemaRegistryServer
) -> None:
    topic = await new_topic(partitions=1)
    await produce_registry_framed(broker, schema_registry, topic, [session_event("s", 0)])
    with socket.socket() as sock:  # a registry address where nothing listens
        sock.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{sock.getsockname()[1]}{CCOMPAT_PATH}"
    handled: list[SystemEvent] = []

    async def collect(event: SystemEvent) -> None:
        handled.append(event)

    service = registry_consumer(broker, topic, down, collect, drain_timeout_s=1)

    async def consume() -> None:
        async with service:
            await asyncio.wait_for(service.run(), 60)

    with pytest.raises(KafkaError, match="unreachable"):
        await consume()
    assert handled == []
    assert service.processor.stats.decode_errors == 0  # not dead-lettered for an outage


async def test_window_processor_aggregates_registry_framed_events_like_single_object_ones(
    broker: RunningBroker, new_topic: NewTopic, schema_registry: SchemaRegistryServer
) -> None:
    """Windows reach the format through the same factory: the same windows either way."""
    topic = await new_topic(partitions=2)
    events = stream(600, step_ms=500)
    expected = tumbling_oracle(events, 60_000, 10_000)
    await produce_registry_framed(broker, schema_registry, topic, events)
    async with running(
        bootstrap_servers=broker.bootstrap_servers,
        topics=[topic],
        group_id=f"{topic}-g",
        output_topic=f"{topic}.aggregates",
        window="tumbling:60s",
        grace="10s",
        value_format="confluent",
        schema_registry_url=schema_registry.url,
    ) as processor:
        rows = await read_aggregates(
            broker.bootstrap_servers,
            f"{topic}.aggregates",
            until=lambda rows: len(rows) >= len(expected),
        )
        assert processor.metrics_snapshot().dead_lettered == 0
    assert as_windows(rows) == expected


@pytest.mark.parametrize(
    "command",
    [
        ["tail", "--offset", "beginning", "--exit-at-end", "--json"],
        ["replay", "--to-file", "-"],
    ],
    ids=["tail", "replay"],
)
async def test_the_readers_decode_registry_framed_values_with_the_settings_format(
    broker: RunningBroker,
    new_topic: NewTopic,
    schema_registry: SchemaRegistryServer,
    command: list[str],
) -> None:
    topic = await new_topic(partitions=1)
    events = [session_event("s", i) for i in range(5)]
    await produce_registry_framed(broker, schema_registry, topic, events)
    env = {
        **os.environ,
        "AGENT_EVENTS_VALUE_FORMAT": "confluent",
        "AGENT_EVENTS_SCHEMA_REGISTRY_URL": schema_registry.url,
    }
    argv = [*CLI, *command, "-b", broker.bootstrap_servers, "--topic", topic]
    done = await asyncio.to_thread(
        subprocess.run, argv, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    ids = [str(line.get("event_id") or line["payload"]["event_id"]) for line in lines]
    assert ids == [str(e.event_id) for e in events], done.stdout[-2000:]


async def test_dlq_show_decodes_a_registry_framed_dead_letter_with_the_settings_format(
    broker: RunningBroker, new_topic: NewTopic, schema_registry: SchemaRegistryServer
) -> None:
    topic, dlq = await new_topic(partitions=1), await new_topic(partitions=1)
    event = session_event("s", 7)
    await produce_registry_framed(broker, schema_registry, topic, [event])

    async def refuse(event: SystemEvent) -> None:
        raise ValueError("refused")

    async with registry_consumer(
        broker, topic, schema_registry.url, refuse, dlq_topic=dlq, max_retries=0
    ) as service:
        await run_until(service, lambda: service.processor.stats.dead_lettered >= 1)
    env = {
        **os.environ,
        "AGENT_EVENTS_VALUE_FORMAT": "confluent",
        "AGENT_EVENTS_SCHEMA_REGISTRY_URL": schema_registry.url,
    }
    argv = [*CLI, "dlq", "show", "0", "0", "-b", broker.bootstrap_servers, "--dlq-topic", dlq]
    done = await asyncio.to_thread(
        subprocess.run, [*argv, "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    shown = json.loads(done.stdout)
    assert shown["decode_error"] is None
    assert shown["payload"]["event_id"] == str(event.event_id)


async def test_the_readme_block_writes_the_registry_wire_format(
    broker: RunningBroker, new_topic: NewTopic, schema_registry: SchemaRegistryServer
) -> None:
    topic = await new_topic(partitions=1)
    code = as_run_here(
        block_under("### Schema Registry wire format"),
        broker,
        **{
            "http://127.0.0.1:8081": schema_registry.url,
            'value_format="confluent",': f'value_format="confluent", topic="{topic}",',
        },
    )
    status, out, err = await run_program(code)
    assert status == 0, err
    assert out.strip() == "sent in the registry wire format"
    (record,) = await read_all(broker.bootstrap_servers, topic, 1)
    assert record.value[:1] == b"\x00"
    async with httpx.AsyncClient(base_url=schema_registry.url) as http:
        latest = (await http.get(f"/subjects/{topic}-value/versions/latest")).json()
    assert int.from_bytes(record.value[1:5], "big") == latest["id"]
