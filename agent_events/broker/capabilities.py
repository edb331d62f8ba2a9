"""What a broker can really do, found by trying it once, so callers refuse instead of lying.

Kafka-compatible brokers differ: Tansu accepts a transactional producer's connection but fails
``InitProducerId``, answers ``offsets_for_times`` with offset 0 whatever the timestamp, and
drops the connection on ``OffsetFetch`` from the admin API and on ``DeleteRecords``. A replay
by timestamp that silently starts at offset 0 would be a wrong result, so code that needs one
of these features calls :func:`require` first and gets :class:`UnsupportedByBroker` with a
message saying why.

Probes run once per bootstrap string (cached for the process), each under its own deadline
(a broker that closes the connection or never answers counts as "lacks it"), on a throw-away
probe topic deleted afterwards. What a broker lacks is logged once, at WARNING.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from agent_events.agent_runtime.errors import ConfigError, UnsupportedByBroker
from agent_events.broker.topics import create_topic

__all__ = [
    "FEATURES",
    "BrokerCapabilities",
    "clear_capabilities_cache",
    "probe_capabilities",
    "require",
]

log = logging.getLogger(__name__)

FEATURES: dict[str, str] = {
    "idempotence": "an idempotent producer",
    "transactions": "transactional producers",
    "offsets_for_times": "exact offsets_for_times (replay from a timestamp)",
    "group_offsets": "listing a consumer group's committed offsets",
    "delete_records": "deleting records (DeleteRecords)",
}
"""Every feature name :func:`require` and the ``needs`` test marker accept, with a description."""

_PROBE_S = 10.0
_cache: dict[str, BrokerCapabilities] = {}
_inflight: dict[str, asyncio.Task[BrokerCapabilities]] = {}


@dataclass(frozen=True, slots=True)
class BrokerCapabilities:
    """The result of probing one broker: a flag per feature and why a missing one is missing."""

    bootstrap_servers: str
    idempotence: bool
    transactions: bool
    offsets_for_times: bool
    group_offsets: bool
    delete_records: bool
    reasons: tuple[tuple[str, str], ...] = field(default=())
    """(feature, what the probe saw) for every missing feature."""

    def supports(self, feature: str) -> bool:
        """True if the broker has ``feature`` (a key of FEATURES); ConfigError for unknown names."""
        if feature not in FEATURES:
            raise ConfigError(f"unknown broker feature {feature!r}; known: {', '.join(FEATURES)}")
        return bool(getattr(self, feature))

    def reason(self, feature: str) -> str | None:
        """What the probe saw for a missing ``feature``; None if the broker has it."""
        return dict(self.reasons).get(feature)

    @property
    def missing(self) -> list[str]:
        """Names of the features the broker lacks."""
        return [name for name in FEATURES if not getattr(self, name)]


def require(capabilities: BrokerCapabilities, feature: str, *, operation: str) -> None:
    """Raise UnsupportedByBroker unless the broker has ``feature``; ``operation`` names the caller.

    >>> require(caps, "offsets_for_times", operation="replay --from-time")
    """
    if capabilities.supports(feature):
        return
    raise UnsupportedByBroker(
        f"{operation} needs {FEATURES[feature]}, which the broker at "
        f"{capabilities.bootstrap_servers} does not support ({capabilities.reason(feature)}); "
        "run it against Apache Kafka"
    )


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


async def _probe(bootstrap: str) -> BrokerCapabilities:
    reasons: dict[str, str] = {}

    async def attempt(feature: str, check: Callable[[], Awaitable[str | None]]) -> bool:
        try:
            async with asyncio.timeout(_PROBE_S):
                problem = await check()
        except TimeoutError:
            problem = f"no answer within {_PROBE_S:.0f} s"
        except Exception as exc:
            problem = _describe(exc)
        if problem is not None:
            reasons[feature] = problem
        return problem is None

    suffix = uuid.uuid4().hex[:12]
    topic = f"__agent_events_probe_{suffix}"
    flags = {
        "idempotence": await attempt("idempotence", lambda: _check_idempotence(bootstrap, topic)),
        "transactions": await attempt(
            "transactions", lambda: _check_transactions(bootstrap, topic, suffix)
        ),
    }
    try:
        base_ts = await _fill_probe_topic(bootstrap, topic)
    except Exception as exc:
        # Without a probe topic nothing below can be checked; say so instead of guessing.
        for feature in ("offsets_for_times", "group_offsets", "delete_records"):
            reasons[feature] = f"probe topic could not be written: {exc!r}"
            flags[feature] = False
    else:
        tp = TopicPartition(topic, 0)
        flags["offsets_for_times"] = await attempt(
            "offsets_for_times", lambda: _check_offsets_for_times(bootstrap, tp, base_ts)
        )
        flags["group_offsets"] = await attempt(
            "group_offsets", lambda: _check_group_offsets(bootstrap, tp, suffix)
        )
        flags["delete_records"] = await attempt(
            "delete_records", lambda: _check_delete_records(bootstrap, tp)
        )
        await _delete_topic_quietly(bootstrap, topic)
    caps = BrokerCapabilities(
        bootstrap_servers=bootstrap,
        reasons=tuple(sorted(reasons.items())),
        **flags,
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


async def _check_idempotence(bootstrap: str, topic: str) -> str | None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", request_timeout_ms=5000
    )
    try:
        await producer.start()
    finally:
        await producer.stop()
    return None


async def _check_transactions(bootstrap: str, topic: str, suffix: str) -> str | None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id=f"__agent_events_probe_{suffix}",
        request_timeout_ms=5000,
    )
    try:
        await producer.start()
    finally:
        await producer.stop()
    return None


async def _fill_probe_topic(bootstrap: str, topic: str) -> int:
    """Create the probe topic, write 3 records 1 s apart in timestamp; return the first one."""
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


async def _check_group_offsets(bootstrap: str, tp: TopicPartition, suffix: str) -> str | None:
    group = f"__agent_events_probe_{suffix}"
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


async def _delete_topic_quietly(bootstrap: str, topic: str) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(5.0):
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
            await admin.start()
            try:
                await admin.delete_topics([topic])
            finally:
                await admin.close()
