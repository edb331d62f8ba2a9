"""Checking by writing that a broker really has what it reports: the workbench's probe.

The product detects a broker's features read-only, from its ``ApiVersions`` answer
(:func:`agent_events.consumers.capabilities.detect_capabilities`). This module is the
workbench's second opinion, used by the ``needs`` test marker and by the tests that keep the
detection honest: it *tries* every feature once on a throw-away topic, group and
transactional id (Tansu, for instance, fails ``InitProducerId``, answers ``offsets_for_times``
with offset 0, ``ListOffsets(latest)`` with the last batch's base offset plus one, and drops
the connection on ``OffsetFetch`` and ``DeleteRecords``).

Probes run once per bootstrap string (cached for the process), each under its own deadline
(a broker that closes the connection or never answers counts as "lacks it"). The probe topic
and group are deleted afterwards. Never call this from a read-only command.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.protocol.admin import DeleteGroupsRequest

from agent_events.broker.topics import create_topic
from agent_events.consumers.capabilities import FEATURES, BrokerCapabilities, require

__all__ = [
    "FEATURES",
    "BrokerCapabilities",
    "clear_capabilities_cache",
    "probe_capabilities",
    "require",
]

log = logging.getLogger(__name__)

_PROBE_S = 10.0
_PROBE_FAILURES = (AIOKafkaError, OSError, ValueError, RuntimeError, TimeoutError)
_BATCH = 3
_cache: dict[str, BrokerCapabilities] = {}
_inflight: dict[str, asyncio.Task[BrokerCapabilities]] = {}


def clear_capabilities_cache() -> None:
    """Forget every probe result (the next call probes again)."""
    _cache.clear()


async def probe_capabilities(
    bootstrap_servers: str, *, refresh: bool = False
) -> BrokerCapabilities:
    """Probe ``bootstrap_servers`` once and cache the answer for this process.

    Concurrent first calls in one event loop share one probe. Takes a few seconds on Kafka
    (a transaction and a topic); each probe is bounded by its own deadline.
    """
    if not refresh and bootstrap_servers in _cache:
        return _cache[bootstrap_servers]
    task = _inflight.get(bootstrap_servers)
    if task is None or task.get_loop() is not asyncio.get_running_loop() or task.done():
        task = asyncio.get_running_loop().create_task(_probe(bootstrap_servers))
        _inflight[bootstrap_servers] = task
    try:
        caps = await asyncio.shield(task)
    finally:
        if task.done():
            _inflight.pop(bootstrap_servers, None)
    _cache[bootstrap_servers] = caps
    return caps


class _Attempts:
    """Runs one check per feature under its own deadline and keeps what each one saw."""

    def __init__(self) -> None:
        self.flags: dict[str, bool] = {}
        self.reasons: dict[str, str] = {}

    async def run(self, feature: str, check: Callable[[], Awaitable[str | None]]) -> None:
        try:
            async with asyncio.timeout(_PROBE_S):
                problem = await check()
        except TimeoutError:
            problem = f"no answer within {_PROBE_S:.0f} s"
        except _PROBE_FAILURES as exc:
            problem = _describe(exc)
        self.fail(feature, problem)

    def fail(self, feature: str, problem: str | None) -> None:
        self.flags[feature] = problem is None
        if problem is not None:
            self.reasons[feature] = problem


async def _probe(bootstrap: str) -> BrokerCapabilities:
    attempts = _Attempts()
    suffix = uuid.uuid4().hex[:12]
    name = f"__agent_events_probe_{suffix}"
    await attempts.run("idempotence", lambda: _check_idempotence(bootstrap))
    await attempts.run("transactions", lambda: _check_transactions(bootstrap, name))
    try:
        base_ts = await _fill_probe_topic(bootstrap, name)
    except _PROBE_FAILURES as exc:
        # Without a probe topic nothing below can be checked; say so instead of guessing.
        for feature in ("offsets_for_times", "group_offsets", "delete_records", "end_offsets"):
            attempts.fail(feature, f"probe topic could not be written: {exc!r}")
    else:
        tp = TopicPartition(name, 0)
        await attempts.run("end_offsets", lambda: _check_end_offsets(bootstrap, tp))
        await attempts.run(
            "offsets_for_times", lambda: _check_offsets_for_times(bootstrap, tp, base_ts)
        )
        await attempts.run("group_offsets", lambda: _check_group_offsets(bootstrap, tp, name))
        await attempts.run("delete_records", lambda: _check_delete_records(bootstrap, tp))
    finally:
        await _delete_quietly(bootstrap, name)
    caps = BrokerCapabilities(
        bootstrap_servers=bootstrap,
        reasons=tuple(sorted(attempts.reasons.items())),
        **attempts.flags,
    )
    if caps.missing:
        log.warning(
            "broker %s lacks %s; operations that need them will refuse",
            bootstrap,
            "; ".join(f"{FEATURES[name]} ({caps.reason(name)})" for name in caps.missing),
        )
    return caps


def _describe(exc: BaseException) -> str:
    text = str(exc)
    name = type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}" if text else name


async def _check_idempotence(bootstrap: str) -> str | None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", request_timeout_ms=5000
    )
    try:
        await producer.start()
    finally:
        await producer.stop()
    return None


async def _check_transactions(bootstrap: str, transactional_id: str) -> str | None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id=transactional_id,
        request_timeout_ms=5000,
    )
    try:
        await producer.start()
    finally:
        await producer.stop()
    return None


async def _fill_probe_topic(bootstrap: str, topic: str) -> int:
    """Create the probe topic, write 3 records 1 s apart in timestamp, then one batch of
    ``_BATCH`` records; return the first timestamp."""
    async with asyncio.timeout(_PROBE_S):
        await create_topic(bootstrap, topic, partitions=1, timeout_s=_PROBE_S)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            base = int(time.time() * 1000) - 10_000
            for i in range(3):
                await producer.send_and_wait(
                    topic, b"probe", partition=0, timestamp_ms=base + i * 1000
                )
            batch = producer.create_batch()
            for _ in range(_BATCH):
                batch.append(key=None, value=b"probe", timestamp=None)
            await (await producer.send_batch(batch, topic, partition=0))
        finally:
            await producer.stop()
    return base


async def _check_offsets_for_times(bootstrap: str, tp: TopicPartition, base_ts: int) -> str | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await consumer.start()
    try:
        found = await consumer.offsets_for_times({tp: base_ts + 1000})
    finally:
        await consumer.stop()
    got = found.get(tp)
    if got is None or got.offset != 1:
        offset = None if got is None else got.offset
        return (
            f"the record at offset 1 was asked for by its timestamp and offset {offset} came back"
        )
    return None


async def _check_end_offsets(bootstrap: str, tp: TopicPartition) -> str | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await consumer.start()
    try:
        end = (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()
    if end != 3 + _BATCH:
        return f"{3 + _BATCH} records were written (the last {_BATCH} in one batch) and {end} came back"
    return None


async def _check_group_offsets(bootstrap: str, tp: TopicPartition, group: str) -> str | None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.commit({tp: 2})
    finally:
        await consumer.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    got = offsets.get(tp)
    if got is None or got.offset != 2:
        return f"offset 2 was committed and {None if got is None else got.offset} was listed"
    return None


async def _check_delete_records(bootstrap: str, tp: TopicPartition) -> str | None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        await admin.delete_records({tp: RecordsToDelete(before_offset=1)})
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await consumer.start()
    try:
        start = (await consumer.beginning_offsets([tp]))[tp]
    finally:
        await consumer.stop()
    if start != 1:
        return f"records before offset 1 were deleted and the log still starts at {start}"
    return None


async def _delete_quietly(bootstrap: str, name: str) -> None:
    """Delete the probe topic and the probe group (both named ``name``), whatever is left."""
    with contextlib.suppress(*_PROBE_FAILURES):
        async with asyncio.timeout(5.0):
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
            await admin.start()
            try:
                await admin.delete_topics([name])
                coordinator = await admin.find_coordinator(name)
            finally:
                await admin.close()
            client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
            await client.bootstrap()
            try:
                await client.send(coordinator, DeleteGroupsRequest([name]))
            finally:
                await client.close()
