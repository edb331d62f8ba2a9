"""Consumer lag per owned partition, as kafka_exporter reports it.

Lag is the partition's log-end offset minus the group's committed offset (the
beginning offset before the first commit): the definition of kafka_exporter's
``kafka_consumergroup_lag`` and of ``kafka-consumer-groups --describe``, so every tool
agrees. Each member reports only the partitions it owns, so summing over the members
of a group never counts a partition twice; a partition given up is removed.

Tansu reports wrong end offsets for multi-record batches (see
``notes/kafka-on-this-machine.md``): a negative difference is reported as 0.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.structs import TopicPartition

from agent_events.consumers.scan import standalone_consumer
from agent_events.observability.metrics import ServiceMetrics
from agent_events.producers.config import KafkaConnectionConfig

__all__ = ["LagMonitor"]

logger = logging.getLogger(__name__)


class LagMonitor:
    """Updates ``agent_events_consumer_lag`` for ``owned()`` partitions every ``interval_s``."""

    def __init__(
        self,
        connection: KafkaConnectionConfig,
        consumer_group: str,
        owned: Callable[[], set[TopicPartition]],
        metrics: ServiceMetrics,
        interval_s: float = 5.0,
    ) -> None:
        self.connection = connection
        self.consumer_group = consumer_group
        self.interval_s = interval_s
        self._owned = owned
        self._metrics = metrics
        self._reported: set[TopicPartition] = set()
        self._warned = False

    async def run(self) -> None:
        """Sample until cancelled, with one group-less client that never joins the group."""
        async with standalone_consumer(self.connection, group_id=self.consumer_group) as client:
            while True:
                await self.update(client)
                await asyncio.sleep(self.interval_s)

    async def update(self, client: AIOKafkaConsumer) -> dict[TopicPartition, int]:
        """Sample once; returns the lag per owned partition (also set on the gauge)."""
        owned = sorted(self._owned())
        lags: dict[TopicPartition, int] = {}
        try:
            if owned:
                end = await client.end_offsets(owned)
                begin = await client.beginning_offsets(owned)
                for tp in owned:
                    committed = await client.committed(tp)
                    position = begin[tp] if committed is None else committed
                    lags[tp] = max(0, end[tp] - position)
        except AIOKafkaError as exc:
            if not self._warned:
                logger.warning("consumer lag not measured: %s (will keep trying)", exc)
                self._warned = True
            return {}
        gauge = self._metrics.consumer_lag
        for tp in self._reported - set(lags):
            gauge.remove(self.consumer_group, tp.topic, str(tp.partition))
        for tp, lag in lags.items():
            gauge.labels(self.consumer_group, tp.topic, str(tp.partition)).set(lag)
        self._reported = set(lags)
        return lags
