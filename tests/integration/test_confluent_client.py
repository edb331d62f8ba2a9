"""``client="confluent"`` (librdkafka) against a real broker: the guarantees aiokafka gives.

The behavioural tests run once per client library, so the two are held to one suite:
keyed partitioning and order, a refused record that does not wedge the producer,
at-least-once handling with commits after handling, the DLQ, and a rebalance while
records flow.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from agent_events.agent_runtime.errors import ConfigError, RecordTooLarge
from agent_events.agent_runtime.event_bus import EventBus, SystemEvent
from agent_events.broker.pytest_fixtures import NewTopic, RunningBroker
from agent_events.consumers import ConsumerService, read_dead_letters
from agent_events.consumers.windows import WindowProcessor
from agent_events.producers import (
    CONTENT_TYPE_HEADER,
    EVENT_TYPE_HEADER,
    SEQUENCE_HEADER,
    KafkaEventProducer,
    partition_for_key,
)
from agent_events.producers.headers import header_value
from agent_events.schemas.codec import CONTENT_TYPE, decode_event
from agent_events.settings import load_settings
from agent_events.transport import KafkaConnectionConfig, backend_for
from tests.integration.kafka_support import produce
from tests.integration.test_consumer_service import (
    Collector,
    committed_offsets,
    next_offsets,
    run_until,
)
from tests.integration.test_consumer_service import session_event as numbered_event
from tests.integration.test_producer import read_all, session_event
from tests.integration.test_producer_recovery import (
    AFTER,
    event,
    send_after,
    stored_seqs,
    wait_for,
)

CLIENTS = ["aiokafka", "confluent"]


# ------------------------------------------------------------------ the setting


def test_an_unknown_client_is_a_config_error_naming_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="client") as raised:
        load_settings({"client": "nope"}, dotenv=tmp_path / "none.env")
    assert "'aiokafka'" in str(raised.value)
    assert "'confluent'" in str(raised.value)
    with pytest.raises(ConfigError, match="choose one of: aiokafka, confluent"):
        backend_for(KafkaConnectionConfig.model_construct(client="nope"))


def test_group_less_readers_refuse_the_confluent_client_in_one_line() -> None:
    connection = KafkaConnectionConfig(client="confluent")
    with pytest.raises(ConfigError, match="set client='aiokafka'"):
        backend_for(connection).consumer(connection, (), {"group_id": None})


async def test_a_window_processor_given_the_confluent_client_stops_at_start_in_one_line() -> None:
    processor = WindowProcessor(
        topics=["agent.events"],
        group_id="windows",
        output_topic="agent.events.aggregates",
        window="tumbling:60s",
        client="confluent",
    )
    with pytest.raises(ConfigError, match="set client='aiokafka'"):
        await processor.start()


# ------------------------------------------------------------------ producing


@pytest.mark.parametrize("client", CLIENTS)
async def test_events_land_on_their_sessions_java_partition_in_order_with_our_headers(
    broker: RunningBroker, new_topic: NewTopic, client: str
) -> None:
    topic = await new_topic(partitions=6)
    sessions = [f"session-{n}" for n in range(20)]
    sent = [session_event(s, i) for i in range(10) for s in sessions]
    async with KafkaEventProducer(
        bootstrap_servers=broker.bootstrap_servers, topic=topic, client=client
    ) as producer:
        for e in sent:
            await producer.send(e)
    assert producer.stats.acknowledged == len(sent)
    records = await read_all(broker.bootstrap_servers, topic, len(sent))
    originals = {e.event_id: e for e in sent}
    order: dict[str, list[int]] = defaultdict(list)
    sequences: dict[str, list[int]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        decoded = decode_event(record.value)
        assert decoded == originals[decoded.event_id]
        assert record.key == str(decoded.session_id).encode()
        assert record.partition == partition_for_key(record.key, 6)
        assert header_value(record.headers, EVENT_TYPE_HEADER) == decoded.event_type.value.encode()
        assert header_value(record.headers, CONTENT_TYPE_HEADER) == CONTENT_TYPE.encode()
        order[str(decoded.session_id)].append(decoded.execution_time_ms or 0)
        sequences[str(decoded.session_id)].append(
            int(header_value(record.headers, SEQUENCE_HEADER) or 0)
        )
    assert all(seen == list(range(10)) for seen in order.values())
    assert all(seqs == list(range(1, 11)) for seqs in sequences.values())


@pytest.mark.broker_kinds("kafka")  # Tansu does not check max.message.bytes
@pytest.mark.parametrize("client", CLIENTS)
async def test_a_record_the_broker_refuses_is_reported_and_the_next_sends_succeed(
    broker: RunningBroker, new_topic: NewTopic, client: str
) -> None:
    # Under the producer's max_request_size (1 MiB), over the topic's limit.
    topic = await new_topic(partitions=1, configs={"max.message.bytes": "300000"})
    huge = event(-1, metadata={"seq": -1, "blob": "x" * 400_000})
    reported: list[tuple[SystemEvent, BaseException]] = []
    async with (
        EventBus() as bus,
        KafkaEventProducer(
            bootstrap_servers=broker.bootstrap_servers,
            topic=topic,
            client=client,
            on_delivery_error=lambda e, exc: reported.append((e, exc)),
        ) as producer,
    ):
        await producer.send_and_wait(event(0))
        await producer.attach(bus)
        await bus.publish(huge)
        offsets = await send_after(producer, 1)
        await producer.flush()
    assert [(e.event_id, type(exc)) for e, exc in reported] == [(huge.event_id, RecordTooLarge)]
    assert offsets == list(range(1, AFTER + 1))
    assert producer.stats.acknowledged == AFTER + 1
    assert await stored_seqs(broker, topic, AFTER + 1) == list(range(AFTER + 1))


# ------------------------------------------------------------------ consuming


def service(
    broker: RunningBroker, topic: str, group: str, client: str, **options: Any
) -> ConsumerService:
    options.setdefault("dlq_topic", None)
    return ConsumerService(
        bootstrap_servers=broker.bootstrap_servers,
        topics=[topic],
        group_id=group,
        client=client,  # type: ignore[arg-type]
        **options,
    )


@pytest.mark.parametrize("client", CLIENTS)
async def test_every_record_is_handled_then_committed_and_a_restart_skips_what_was_committed(
    broker: RunningBroker, new_topic: NewTopic, client: str
) -> None:
    topic = await new_topic(partitions=4)
    group = f"{topic}-g"
    events = [numbered_event(f"s{s}", i) for i in range(10) for s in range(30)]
    await produce(broker.bootstrap_servers, topic, events)
    collector = Collector(len(events))
    async with service(broker, topic, group, client, handlers=[collector]) as first:
        await run_until(first, collector.done.is_set)
    assert all(seqs == list(range(10)) for seqs in collector.by_session.values())
    assert len(collector.by_session) == 30
    committed = await committed_offsets(broker.bootstrap_servers, group, topic, 4)
    assert committed == await next_offsets(broker.bootstrap_servers, topic, len(events))

    later = [numbered_event("late", i) for i in range(5)]
    await produce(broker.bootstrap_servers, topic, later)
    again = Collector(len(later))
    async with service(broker, topic, group, client, handlers=[again]) as second:
        await run_until(second, again.done.is_set)
        await asyncio.sleep(0.5)  # anything already committed would arrive meanwhile
    assert dict(again.by_session) == {"late": list(range(5))}


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_handler_that_raises_sends_the_record_to_the_dlq_and_the_rest_is_handled(
    broker: RunningBroker, new_topic: NewTopic, client: str
) -> None:
    topic = await new_topic(partitions=2)
    dlq = await new_topic(partitions=2, name=f"{topic}.dlq")
    events = [numbered_event(f"s{s}", i) for i in range(4) for s in range(5)]
    await produce(broker.bootstrap_servers, topic, events)
    handled: list[tuple[str, int]] = []

    async def picky(e: SystemEvent) -> None:
        if e.metadata["seq"] == 2:  # type: ignore[index, call-overload]
            raise ValueError(f"cannot handle {e.session_id}")
        handled.append((str(e.session_id), int(e.metadata["seq"])))  # type: ignore[index, call-overload]

    options: dict[str, Any] = {"dlq_topic": dlq, "max_retries": 1, "retry_backoff_s": 0.01}
    async with service(broker, topic, f"{topic}-g", client, handlers=[picky], **options) as s:
        await run_until(s, lambda: s.processor.stats.dead_lettered >= 5 and len(handled) >= 15)
    connection = KafkaConnectionConfig(bootstrap_servers=broker.bootstrap_servers)
    letters = [d async for d in read_dead_letters(connection, dlq)]
    assert {d.key for d in letters} == {f"s{n}".encode() for n in range(5)}
    assert all(d.errors["stage"] == "handle" for d in letters)
    assert sorted(handled) == sorted((f"s{n}", i) for n in range(5) for i in (0, 1, 3))
    committed = await committed_offsets(broker.bootstrap_servers, f"{topic}-g", topic, 2)
    assert committed == await next_offsets(broker.bootstrap_servers, topic, len(events))


@pytest.mark.parametrize("client", CLIENTS)
async def test_members_split_the_partitions_and_one_joining_mid_run_loses_nothing(
    broker: RunningBroker, new_topic: NewTopic, client: str
) -> None:
    if client == "confluent" and broker.kind == "tansu":
        pytest.skip(
            "Tansu never assigns a partition to a librdkafka member that joins a running "
            "group (raw confluent-kafka consumers show it too, range or cooperative-sticky)"
        )
    topic = await new_topic(partitions=6)
    group = f"{topic}-g"
    sessions, per_session = 60, 50
    events = [numbered_event(f"s{s}", i) for i in range(per_session) for s in range(sessions)]
    await produce(broker.bootstrap_servers, topic, events)
    handled: dict[str, list[int]] = defaultdict(list)
    by_member: dict[str, int] = defaultdict(int)

    def handler(name: str) -> Any:
        async def handle(e: SystemEvent) -> None:
            await asyncio.sleep(0.01)  # slow enough for the third member to join mid-run
            handled[str(e.session_id)].append(int(e.metadata["seq"]))  # type: ignore[index, call-overload]
            by_member[name] += 1

        return handle

    def all_seen() -> bool:
        return sum(len(set(seqs)) for seqs in handled.values()) >= len(events)

    members = {
        name: service(broker, topic, group, client, handlers=[handler(name)], commit_interval_s=0.2)
        for name in ("a", "b", "c")
    }
    runs: dict[str, asyncio.Task[None]] = {}
    try:
        for name in ("a", "b"):
            await members[name].start()
            runs[name] = asyncio.create_task(members[name].run())

        def split() -> bool:
            a, b = members["a"].assignment, members["b"].assignment
            return bool(a and b and not a & b and len(a | b) == 6)

        await wait_for(split)  # the two members own the partitions between them
        await wait_for(lambda: sum(by_member.values()) >= len(events) // 4)
        await members["c"].start()
        runs["c"] = asyncio.create_task(members["c"].run())

        def finished() -> bool:
            for run in runs.values():
                if run.done():
                    run.result()
            return all_seen()

        await wait_for(finished, deadline_s=90)
    finally:
        for name, member in members.items():
            member.request_stop()
            if name in runs:
                await runs[name]
            await member.stop()
    assert by_member["c"] > 0, "the member that joined mid-run got no partition"
    for seqs in handled.values():
        first_seen = list(dict.fromkeys(seqs))
        assert first_seen == list(range(per_session)), "a session was handled out of order"
    committed = await committed_offsets(broker.bootstrap_servers, group, topic, 6)
    assert committed == await next_offsets(broker.bootstrap_servers, topic, len(events))
