"""ConsumerService against real brokers: order, commits, poison pills, retries, DLQ, re-drive."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections import defaultdict
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from kafka_support import produce

from agent_events.agent_runtime.errors import KafkaError
from agent_events.agent_runtime.event_bus import EventType, SystemEvent
from agent_events.broker.pytest_fixtures import NewTopic, RunningBroker
from agent_events.consumers import ConsumerService, DeadLetterFilter, read_dead_letters, redrive
from agent_events.consumers.dlq import DeadLetter, DeadLetterPublisher, error_headers_of
from agent_events.producers.config import KafkaConnectionConfig
from agent_events.schemas.codec import EventCodec, encode_event


def session_event(session: str, i: int) -> SystemEvent:
    return SystemEvent(
        event_type=EventType.AGENT_COMPLETED,
        agent_id="agent",
        session_id=session,
        metadata={"seq": i},
    )


class Collector:
    """Records (session, seq) per handled event and signals once ``expected`` are seen."""

    def __init__(self, expected: int) -> None:
        self.by_session: dict[str, list[int]] = defaultdict(list)
        self.count = 0
        self.expected = expected
        self.done = asyncio.Event()

    async def __call__(self, event: SystemEvent) -> None:
        self.by_session[str(event.session_id)].append(int(event.metadata["seq"]))  # type: ignore[arg-type]
        self.count += 1
        if self.count >= self.expected:
            self.done.set()


async def run_until(
    service: ConsumerService, condition: Callable[[], object], deadline_s: float = 60
) -> None:
    """Run ``service`` until ``condition()`` is true (checked on each poll), then stop it."""
    runner = asyncio.create_task(service.run())
    try:
        async with asyncio.timeout(deadline_s):
            while not condition():
                if runner.done():
                    runner.result()
                await asyncio.sleep(0.05)
    finally:
        service.request_stop()
        await runner


async def committed_offsets(
    bootstrap: str, group: str, topic: str, partitions: int
) -> dict[int, int | None]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        await consumer.stop()


async def next_offsets(bootstrap: str, topic: str, records: int) -> dict[int, int]:
    """One past the last record's offset, per partition, by reading every record.

    (Tansu's end offsets are wrong for multi-record batches, so they are not used.)
    """
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    last: dict[int, int] = {}
    seen = 0
    try:
        while seen < records:
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, f"only {seen} of {records} records could be read back"
            for tp, recs in batch.items():
                seen += len(recs)
                last[tp.partition] = recs[-1].offset + 1
    finally:
        await consumer.stop()
    return last


@pytest.mark.parametrize("ordering", ["partition", "key"])
async def test_every_event_is_handled_in_session_order_and_committed(
    broker: RunningBroker, new_topic: NewTopic, ordering: str
) -> None:
    topic = await new_topic(partitions=4)
    events = [session_event(f"s{s}", i) for i in range(10) for s in range(30)]
    await produce(broker.bootstrap_servers, topic, events)
    collector = Collector(len(events))
    group = f"{topic}-g"
    async with ConsumerService(
        bootstrap_servers=broker.bootstrap_servers,
        topics=[topic],
        group_id=group,
        ordering=ordering,
        dlq_topic=None,
        handlers=[collector],
    ) as service:
        await run_until(service, collector.done.is_set)
    assert collector.count == len(events)
    assert all(seqs == list(range(10)) for seqs in collector.by_session.values())
    assert len(collector.by_session) == 30
    committed = await committed_offsets(broker.bootstrap_servers, group, topic, 4)
    assert committed == await next_offsets(broker.bootstrap_servers, topic, len(events))


async def test_restarted_member_resumes_after_the_committed_offsets(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=2)
    group = f"{topic}-g"
    first = [session_event("a", i) for i in range(20)]
    await produce(broker.bootstrap_servers, topic, first)
    collector = Collector(len(first))
    config = {
        "bootstrap_servers": broker.bootstrap_servers,
        "topics": [topic],
        "group_id": group,
        "dlq_topic": None,
    }
    async with ConsumerService(handlers=[collector], **config) as service:
        await run_until(service, collector.done.is_set)
    second = [session_event("a", i) for i in range(20, 25)]
    await produce(broker.bootstrap_servers, topic, second)
    again = Collector(len(second))
    async with ConsumerService(handlers=[again], **config) as service:
        await run_until(service, again.done.is_set)
    assert again.by_session["a"] == list(range(20, 25))


async def test_poison_pills_go_to_the_dlq_and_every_good_event_is_handled(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=3)
    dlq = await new_topic(partitions=3, name=f"{topic}.dlq")
    good = [session_event(f"s{s}", i) for i in range(5) for s in range(6)]
    valid = encode_event(good[0])
    pills = {
        b"random": os.urandom(64),
        b"truncated": valid[: len(valid) // 2],
        b"unknown-fingerprint": b"\xc3\x01" + b"\xee" * 8 + valid[10:],
        b"empty": b"",
    }
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for i, event in enumerate(good):
            await producer.send_and_wait(
                topic, encode_event(event), key=str(event.session_id).encode()
            )
            if i % 8 == 0:
                for key, value in pills.items():
                    await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()
    pill_count = len(pills) * len(range(0, len(good), 8))
    collector = Collector(len(good))
    async with ConsumerService(
        bootstrap_servers=broker.bootstrap_servers,
        topics=[topic],
        group_id=f"{topic}-g",
        dlq_topic=dlq,
        handlers=[collector],
    ) as service:
        await run_until(
            service,
            lambda: collector.done.is_set() and service.processor.stats.decode_errors >= pill_count,
        )
    assert all(seqs == list(range(5)) for seqs in collector.by_session.values())
    letters = [
        d
        async for d in read_dead_letters(
            KafkaConnectionConfig(bootstrap_servers=broker.bootstrap_servers), dlq
        )
    ]
    assert len(letters) == pill_count
    assert {d.key for d in letters} == set(pills)
    for letter in letters:
        assert letter.errors["stage"] == "decode"
        assert letter.errors["topic"] == topic
        assert letter.errors["consumer.group"] == f"{topic}-g"
        assert letter.value == pills[letter.key or b""]
        assert (
            "DecodeError" in letter.errors["exception.class.name"]
            or "Error" in letter.errors["exception.class.name"]
        )


async def test_failing_handler_is_retried_dead_lettered_and_redriven_once_fixed(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=2)
    dlq = await new_topic(partitions=2, name=f"{topic}.dlq")
    events = [session_event(f"s{s}", i) for i in range(4) for s in range(5)]
    await produce(broker.bootstrap_servers, topic, events)
    attempts: dict[str, int] = defaultdict(int)
    handled: list[tuple[str, int]] = []
    broken = True

    async def picky(event: SystemEvent) -> None:
        key = f"{event.session_id}:{event.metadata['seq']}"
        attempts[key] += 1
        if broken and event.metadata["seq"] == 2:
            raise ValueError(f"cannot handle {key}")
        handled.append((str(event.session_id), int(event.metadata["seq"])))  # type: ignore[arg-type]

    other_group_seen: list[str] = []

    async def bystander(event: SystemEvent) -> None:
        other_group_seen.append(f"{event.session_id}:{event.metadata['seq']}")

    config = {
        "bootstrap_servers": broker.bootstrap_servers,
        "topics": [topic],
        "dlq_topic": dlq,
        "max_retries": 2,
        "retry_backoff_s": 0.01,
    }
    async with ConsumerService(group_id="picky", handlers=[picky], **config) as service:
        await run_until(
            service, lambda: service.processor.stats.dead_lettered >= 5 and len(handled) >= 15
        )
    assert all(attempts[f"s{s}:2"] == 3 for s in range(5))
    connection = KafkaConnectionConfig(bootstrap_servers=broker.bootstrap_servers)
    letters = [d async for d in read_dead_letters(connection, dlq)]
    assert len(letters) == 5
    assert all(d.errors["stage"] == "handle" and d.errors["retry.count"] == "2" for d in letters)
    assert all(d.errors["handler"].endswith("picky") for d in letters)
    assert {d.key for d in letters} == {f"s{s}".encode() for s in range(5)}

    # A bystander group reads everything once, including the re-driven copies it must skip.
    async with ConsumerService(group_id="bystander", handlers=[bystander], **config) as service:
        await run_until(service, lambda: len(other_group_seen) >= 20)

    broken = False
    report = await redrive(connection, dlq, DeadLetterFilter(consumer_group="picky"))
    assert report.sent == 5
    async with ConsumerService(group_id="picky", handlers=[picky], **config) as service:
        await run_until(service, lambda: len(handled) >= 20)
    assert sorted(handled) == sorted((f"s{s}", i) for s in range(5) for i in range(4))
    async with ConsumerService(group_id="bystander", handlers=[bystander], **config) as service:
        await run_until(service, lambda: service.processor.stats.skipped >= 5)
    assert len(other_group_seen) == 20


async def test_dead_letters_can_be_listed_with_a_filter(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, b"x", key=b"k", headers=[("__agent_events.errors.stage", b"decode")]
        )
        await producer.send_and_wait(
            topic, b"y", key=b"k", headers=[("__agent_events.errors.stage", b"handle")]
        )
    finally:
        await producer.stop()
    connection = KafkaConnectionConfig(bootstrap_servers=broker.bootstrap_servers)
    found = [
        d async for d in read_dead_letters(connection, topic, DeadLetterFilter(stage="handle"))
    ]
    assert [d.value for d in found] == [b"y"]
    assert error_headers_of(found[0].headers) == {"stage": "handle"}


async def test_a_record_too_large_to_dead_letter_as_it_is_goes_without_its_value(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    """A value near 1 MiB plus the error headers is over the DLQ write limit: the partition
    must not stop; the dead letter says where the original is and what it was."""
    topic = await new_topic(partitions=1)
    dlq = await new_topic(partitions=1, name=f"{topic}.dlq")
    big = session_event("s-big", 0).model_copy(
        update={"metadata": {"seq": 0, "blob": "x" * 1_047_500}}
    )
    await produce(
        broker.bootstrap_servers, topic, [big, session_event("s-big", 1)], max_request_size=2**21
    )
    handled: list[int] = []

    async def refuses_the_big_one(event: SystemEvent) -> None:
        if "blob" in event.metadata:
            raise ValueError("too big to handle")
        handled.append(int(event.metadata["seq"]))  # type: ignore[arg-type]

    async with ConsumerService(
        bootstrap_servers=broker.bootstrap_servers,
        topics=[topic],
        group_id="sizes",
        dlq_topic=dlq,
        max_retries=0,
        handlers=[refuses_the_big_one],
    ) as service:
        await run_until(service, lambda: handled == [1])
    connection = KafkaConnectionConfig(bootstrap_servers=broker.bootstrap_servers)
    (letter,) = [d async for d in read_dead_letters(connection, dlq)]
    assert letter.errors["offset"] == "0"
    assert letter.errors["topic"] == topic
    original = EventCodec().encode(big)
    if broker.kind == "tansu":  # no topic size limit: the producer, sized for copies, writes it
        assert letter.value == original
        return
    assert letter.errors["value.truncated"] == "true"
    assert letter.errors["value.size"] == str(len(original))
    assert letter.errors["value.sha256"] == hashlib.sha256(original).hexdigest()


@pytest.mark.broker_kinds("kafka")
async def test_a_dead_letter_that_cannot_be_written_stops_the_publisher_loudly(
    broker: RunningBroker,
) -> None:
    """A DLQ the broker refuses (here: a name it cannot create) is an error, never a spin."""
    connection = KafkaConnectionConfig(
        bootstrap_servers=broker.bootstrap_servers, request_timeout_ms=1_500
    )
    letter = DeadLetter(
        topic="source", partition=0, offset=7, key=b"s", value=b"v", headers=[],
        stage="handle", error=ValueError("boom"), consumer_group="g",
    )  # fmt: skip
    async with DeadLetterPublisher(
        connection, f"not a topic name! {uuid.uuid4().hex[:8]}", write_deadline_s=2.0
    ) as publisher:
        with pytest.raises(KafkaError, match="stopping rather than skip"):
            async with asyncio.timeout(30):
                await publisher.publish(letter)


async def test_records_of_types_no_handler_takes_are_skipped_without_decoding(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    """The ``event_type`` header decides before the value is decoded: a service that handles
    completions never decodes (nor dead-letters) a started event; a tombstone has no header
    and still goes to the DLQ."""
    topic = await new_topic(partitions=1)
    dlq = await new_topic(partitions=1, name=f"{topic}.dlq")
    started = SystemEvent(event_type=EventType.AGENT_STARTED, agent_id="agent", session_id="s")
    await produce(broker.bootstrap_servers, topic, [started, session_event("s", 1)])
    raw = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    await raw.start()
    try:  # garbage labelled as a type nobody takes, then a tombstone
        await raw.send_and_wait(
            topic, b"garbage", key=b"s", headers=[("event_type", b"agent_started")]
        )
        await raw.send_and_wait(topic, None, key=b"s")
    finally:
        await raw.stop()
    await produce(broker.bootstrap_servers, topic, [session_event("s", 2)])
    seen: list[int] = []

    async def completions(event: SystemEvent) -> None:
        seen.append(int(event.metadata["seq"]))  # type: ignore[arg-type]

    async with ConsumerService(
        bootstrap_servers=broker.bootstrap_servers,
        topics=[topic],
        group_id=f"{topic}-g",
        dlq_topic=dlq,
        handlers=[(EventType.AGENT_COMPLETED, completions)],
    ) as service:
        stats = service.processor.stats
        await run_until(service, lambda: seen == [1, 2] and stats.dead_lettered == 1)
    assert (stats.unwanted, stats.decode_errors, stats.handled) == (2, 1, 2)
