"""librdkafka's producer with the asyncio face of the aiokafka calls ours make.

librdkafka batches per partition, retries and keeps the idempotent sequence itself; what
it needs from us is ``poll()`` calls, which serve its delivery reports. They are made on
the event loop, so a report settles its record where the record was sent, with no
thread to hand it over (and no thread contending for the GIL with the sender):

1. :meth:`ConfluentProducer.produce` hands one record to librdkafka (it only enqueues),
   then serves the reports already waiting with ``poll(0)``; while librdkafka's queue is
   full it waits, without blocking the loop, for reports to free room;
2. while records are in flight, a poller task calls ``poll(0)`` every millisecond
   (librdkafka offers no awaitable to wake on), so reports arrive when nothing is sent;
3. each report runs the record's ``on_delivery`` on the loop: its
   :class:`RecordMetadata` or the aiokafka error of the broker's answer, in the order
   librdkafka reports them;
4. :meth:`ConfluentProducer.stop` waits until every record produced was reported, then
   stops the poller (nothing ``produce`` accepted is dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka.errors import KafkaConnectionError
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.structs import RecordMetadata, TopicPartition
from confluent_kafka import KafkaException, Producer  # type: ignore[import-untyped]

from agent_events.agent_runtime.errors import ConfigError
from agent_events.transport._confluent import aiokafka_error, probe_broker

__all__ = ["ConfluentProducer", "DeliveryCallback"]

DeliveryCallback = Callable[[AIOKafkaError | None, RecordMetadata | None], None]
"""Called on the event loop with (error, None) or (None, where the record was written)."""

logger = logging.getLogger(__name__)

_POLL_S = 0.001
_METADATA_MAX_AGE_S = 60.0


class ConfluentProducer:
    """A librdkafka producer for one event loop (module docstring).

    Offers what :class:`~agent_events.producers.KafkaEventProducer`'s sender and the
    dead-letter publisher call: ``start``/``stop``, :meth:`produce`, ``send``,
    ``send_and_wait``, ``partitions_for`` and :meth:`flush`.
    """

    def __init__(self, config: dict[str, Any], *, bootstrap_servers: str, probe_s: float) -> None:
        self._config = config
        self._bootstrap_servers = bootstrap_servers
        self._probe_s = probe_s
        self._producer: Any = None
        self._poller: asyncio.Task[None] | None = None
        self._in_flight = 0
        self._sending = asyncio.Event()
        self._all_reported = asyncio.Event()
        self._all_reported.set()
        self._room = asyncio.Event()
        self._partitions: dict[str, tuple[int, float]] = {}
        self._tps: dict[tuple[str, int], TopicPartition] = {}

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Build the client and ask for metadata, so an unreachable broker fails here.

        librdkafka connects lazily; without the probe a wrong address would surface only
        as records timing out. Raises aiokafka's ``KafkaConnectionError`` (retried by the
        start backoff) when no broker answers.
        """
        try:
            producer = Producer(self._config)
        except KafkaException as exc:
            raise ConfigError(f"librdkafka refused the producer settings: {exc}") from None
        try:
            await asyncio.to_thread(probe_broker, producer, self._probe_s)
        except KafkaException as exc:
            raise KafkaConnectionError(
                f"no broker answered at {self._bootstrap_servers}: {exc.args[0].str()}"
            ) from None
        self._producer = producer
        self._poller = asyncio.get_running_loop().create_task(
            self._poll_while_in_flight(producer), name="rdkafka-producer-poll"
        )

    async def stop(self) -> None:
        """Wait until every record produced was reported, then stop the poller.

        Cancelled while waiting, records still in flight are dropped with the client.
        """
        producer = self._producer
        if producer is None:
            return
        try:
            await self.flush()
        finally:
            self._producer = None
            poller, self._poller = self._poller, None
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller

    # ------------------------------------------------------------------ sending

    async def produce(
        self,
        topic: str,
        partition: int | None,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int | None,
        headers: Sequence[tuple[str, bytes]] | None,
        on_delivery: DeliveryCallback,
    ) -> None:
        """Hand one record to librdkafka; ``on_delivery`` runs on the loop when it is settled.

        Waits (without blocking the loop) while librdkafka's queue is full. Raises the
        aiokafka error of a record librdkafka refuses at once (over ``message.max.bytes``,
        an unknown partition).
        """
        while not self.produce_nowait(
            topic, partition, key, value, timestamp_ms, headers, on_delivery
        ):
            self._room.clear()
            await self._room.wait()  # librdkafka's queue is full: reports free room

    def produce_nowait(
        self,
        topic: str,
        partition: int | None,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int | None,
        headers: Sequence[tuple[str, bytes]] | None,
        on_delivery: DeliveryCallback,
    ) -> bool:
        """:meth:`produce` without the wait: ``False`` (nothing taken) when the queue is full."""
        producer = self._producer
        if producer is None:
            raise KafkaConnectionError("the producer is not started")
        try:
            producer.produce(
                topic,
                value=value,
                key=key,
                partition=-1 if partition is None else partition,  # -1: librdkafka's choice
                on_delivery=self._reporter(on_delivery),
                timestamp=timestamp_ms or 0,  # 0: now
                headers=headers,
            )
        except BufferError:
            return False
        except KafkaException as exc:
            raise aiokafka_error(exc) from None
        self._in_flight += 1
        if self._in_flight == 1:
            self._all_reported.clear()
            self._sending.set()
        producer.poll(0)  # step 1: serve what is reported already, as a hand-written loop does
        return True

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        """aiokafka's ``send``: the record is queued; the future settles with its metadata."""
        future: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()

        def settle(error: AIOKafkaError | None, metadata: RecordMetadata | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(metadata)

        await self.produce(topic, partition, key, value, timestamp_ms, headers, settle)
        return future

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> RecordMetadata:
        """aiokafka's ``send_and_wait``: returns once the broker acknowledged the record."""
        return await (await self.send(topic, value, key, partition, timestamp_ms, headers))

    async def flush(self) -> None:
        """Wait until librdkafka reported every record produced so far."""
        while self._in_flight:
            await self._all_reported.wait()

    # ------------------------------------------------------------------ metadata

    def known_partitions(self, topic: str) -> int | None:
        """The partition count of ``topic`` from recent metadata, ``None`` when unknown."""
        known = self._partitions.get(topic)
        if known is None or time.monotonic() - known[1] > _METADATA_MAX_AGE_S:
            return None
        return known[0]

    async def partition_count(self, topic: str) -> int:
        """The partition count of ``topic``, asking the broker (creates it where brokers may)."""
        producer = self._producer
        if producer is None:
            raise KafkaConnectionError("the producer is not started")
        timeout_s = self._config["socket.timeout.ms"] / 1000
        give_up_at = time.monotonic() + timeout_s
        while True:
            try:
                metadata = await asyncio.to_thread(producer.list_topics, topic, timeout_s)
            except KafkaException as exc:
                raise aiokafka_error(exc) from None
            found = metadata.topics.get(topic)
            if found is not None and found.error is None and found.partitions:
                count = len(found.partitions)
                self._partitions[topic] = (count, time.monotonic())
                return count
            if time.monotonic() >= give_up_at:
                error = found.error if found is not None else None
                raise (
                    aiokafka_error(error)
                    if error is not None
                    else KafkaConnectionError(f"no metadata for topic {topic!r}")
                )
            await asyncio.sleep(0.1)  # the topic is being created: ask again shortly

    async def partitions_for(self, topic: str) -> set[int]:
        """aiokafka's ``partitions_for``: the partition ids of ``topic``."""
        count = self.known_partitions(topic) or await self.partition_count(topic)
        return set(range(count))

    # ------------------------------------------------------------------ delivery reports

    async def _poll_while_in_flight(self, producer: Any) -> None:
        """Step 2: serve reports while records are in flight; idle otherwise."""
        while True:
            await self._sending.wait()
            while self._in_flight:
                producer.poll(0)
                await asyncio.sleep(_POLL_S)
            self._sending.clear()

    def _reporter(self, on_delivery: DeliveryCallback) -> Callable[[Any, Any], None]:
        """Step 3: librdkafka's report of one record, run inside ``poll()`` on the loop."""
        tps = self._tps

        def reported(error: Any, message: Any) -> None:
            self._in_flight -= 1
            if not self._in_flight:
                self._all_reported.set()
            self._room.set()
            try:
                on_delivery(*_outcome(error, message, tps))
            except Exception:
                # as asyncio does for a failing callback: raised here, it would surface
                # from poll() in an unrelated send or stop the poller
                logger.exception("a delivery callback failed")

        return reported


def _outcome(
    error: Any, message: Any, tps: dict[tuple[str, int], TopicPartition]
) -> tuple[AIOKafkaError | None, RecordMetadata | None]:
    """librdkafka's report as aiokafka's: (error, None) or (None, metadata)."""
    if error is not None:
        return aiokafka_error(error), None
    timestamp_type, timestamp = message.timestamp()
    topic, partition = message.topic(), message.partition()
    tp = tps.get((topic, partition))
    if tp is None:
        tp = tps[topic, partition] = TopicPartition(topic, partition)
    metadata = RecordMetadata(
        topic,
        partition,
        tp,
        message.offset(),
        timestamp,
        max(timestamp_type - 1, 0),  # librdkafka counts from "not available"
        -1,
    )
    return None, metadata
