"""Consumer lag per owned partition, as kafka_exporter reports it.

Lag is the partition's log-end offset minus the group's committed offset (the
beginning offset before the first commit): the definition of kafka_exporter's
``kafka_consumergroup_lag`` and of ``kafka-consumer-groups --describe``, so every tool
agrees. Each member reports only the partitions it owns, so summing over the members
of a group never counts a partition twice; a partition given up is removed.

Tansu reports wrong end offsets for multi-record batches (see
``notes/kafka-on-this-machine.md``): a negative difference is reported as 0.

Lag that cannot be measured is not exported: while samples fail (the broker is gone, or
does not answer within ``timeout_s``), the per-partition series are withdrawn,
``agent_events_consumer_lag_stale`` is 1 and
``agent_events_consumer_lag_last_success_timestamp_seconds`` says when lag was last
measured, so a dashboard shows a gap and an alert can fire on the age, instead of a
frozen line that looks healthy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.structs import TopicPartition

from agent_events.agent_runtime.errors import BrokerUnavailable
from agent_events.consumers.scan import standalone_consumer
from agent_events.observability.metrics import ServiceMetrics
from agent_events.producers.config import KafkaConnectionConfig
from agent_events.transport import broker_answered

__all__ = ["LagMonitor"]

logger = logging.getLogger(__name__)

DEFAULT_SAMPLE_TIMEOUT_S = 5.0
"""How long one sample may take before it counts as failed.

aiokafka retries an offsets request for the whole ``request_timeout_ms`` (30 s) when the
broker is gone; a sampler that waited that long would report stale lag as current.
"""


class LagMonitor:
    """Updates ``agent_events_consumer_lag`` for ``owned()`` partitions every ``interval_s``.

    Also the service's broker probe: :attr:`problem` says why the last sample failed (a
    failed sample withdraws the lag series, sets ``agent_events_consumer_lag_stale`` to 1
    and leaves ``agent_events_consumer_lag_last_success_timestamp_seconds`` where it was),
    :attr:`last_success` when one last reached the broker.
    """

    def __init__(
        self,
        connection: KafkaConnectionConfig,
        consumer_group: str,
        owned: Callable[[], set[TopicPartition]],
        metrics: ServiceMetrics,
        interval_s: float = 5.0,
        timeout_s: float = DEFAULT_SAMPLE_TIMEOUT_S,
    ) -> None:
        self.connection = connection
        self.consumer_group = consumer_group
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._owned = owned
        self._metrics = metrics
        self._reported: set[TopicPartition] = set()
        self.problem: str | None = None
        """Why the last sample failed; ``None`` when it succeeded (or none ran yet)."""
        self.last_success: float | None = None
        """``time.monotonic()`` of the last sample that reached the broker."""

    async def run(self) -> None:
        """Sample until cancelled, with one group-less client that never joins the group.

        A client that cannot start (the broker went away as the service started) counts
        as a failed sample and is tried again after ``interval_s``.
        """
        while True:
            try:
                async with standalone_consumer(
                    self.connection, group_id=self.consumer_group
                ) as client:
                    while True:
                        await self.update(client)
                        await asyncio.sleep(self.interval_s)
            except BrokerUnavailable as exc:
                self._failed(exc)
            await asyncio.sleep(self.interval_s)

    async def update(self, client: AIOKafkaConsumer) -> dict[TopicPartition, int]:
        """Sample once; returns the lag per owned partition (also set on the gauge).

        With no partition owned, a metadata request still checks that the broker answers.
        """
        owned = sorted(self._owned())
        try:
            async with asyncio.timeout(self.timeout_s):
                lags = await _measure(client, owned)
        except (AIOKafkaError, TimeoutError) as exc:
            self._failed(exc)
            return {}
        self._succeeded(lags)
        return lags

    def _succeeded(self, lags: dict[TopicPartition, int]) -> None:
        gauge = self._metrics.consumer_lag
        for tp in self._reported - set(lags):
            gauge.remove(self.consumer_group, tp.topic, str(tp.partition))
        for tp, lag in lags.items():
            gauge.labels(self.consumer_group, tp.topic, str(tp.partition)).set(lag)
        self._reported = set(lags)
        self._metrics.consumer_lag_stale.labels(self.consumer_group).set(0)
        self._metrics.consumer_lag_last_success.labels(self.consumer_group).set(time.time())
        self.last_success = time.monotonic()
        if self.problem is not None:
            logger.info("consumer lag measured again")
            self.problem = None
        broker_answered()

    def _failed(self, exc: BaseException) -> None:
        """Withdraw the lag series (they would be stale) and mark them stale; warn once."""
        reason = _describe(exc, self.timeout_s)
        if self.problem is None:
            logger.warning("consumer lag not measured: %s (will keep trying)", reason)
        self.problem = reason
        gauge = self._metrics.consumer_lag
        for tp in self._reported:
            gauge.remove(self.consumer_group, tp.topic, str(tp.partition))
        self._reported = set()
        self._metrics.consumer_lag_stale.labels(self.consumer_group).set(1)


async def _measure(
    client: AIOKafkaConsumer, owned: list[TopicPartition]
) -> dict[TopicPartition, int]:
    if not owned:
        await client.topics()
        return {}
    end = await client.end_offsets(owned)
    begin = await client.beginning_offsets(owned)
    lags: dict[TopicPartition, int] = {}
    for tp in owned:
        committed = await client.committed(tp)
        position = begin[tp] if committed is None else committed
        lags[tp] = max(0, end[tp] - position)
    return lags


def _describe(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"the broker did not answer within {timeout_s:g} s"
    return str(exc) or type(exc).__name__
