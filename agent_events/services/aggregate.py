"""The ``aggregate`` service: windowed aggregation of agent events, with crash-safe state.

Unlike the handler services it runs its own consumer-group member, a
:class:`~consumers.windows.WindowProcessor` (state in a changelog topic, output in Kafka
transactions where the broker has them); :class:`ServiceHost` drives it like any other
member (start, run, SIGTERM, lag, metrics). Scale it like every service: more processes
with the same ``--group`` share the partitions, each restoring the state of those it
gets before processing them.

Threshold alerts (``--alert-threshold``) go to ``aggregate.alerts_topic`` inside the
transaction and are published on the process's bus, where a logging handler writes
them at WARNING. Metrics: ``agent_events_window_*`` (open windows, late events,
restore time, ...), see :mod:`consumers.windows.metrics`.

::

    agent-events consume aggregate --window tumbling:60s --grace 10s
    agent-events consume aggregate --window sliding:60s --alert-threshold 10
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from prometheus_client import CollectorRegistry

from agent_events.agent_runtime.event_bus import EventBus
from agent_events.agent_runtime.events import EventType, SystemEvent
from agent_events.consumers.config import ConsumerConfig, GroupMemberTuning
from agent_events.consumers.runtime import HandlerSpec
from agent_events.consumers.windows import (
    Reducer,
    WindowedAggregationConfig,
    WindowMetricsCollector,
    WindowProcessor,
    WindowSettings,
    parse_window,
)
from agent_events.consumers.windows.codec import AggregateEncoder
from agent_events.consumers.windows.config import WindowTuning
from agent_events.schemas.registry import ValueFormatConfig
from agent_events.services._base import Service
from agent_events.settings import AgentEventsSettings

__all__ = ["AggregateService", "build_aggregate_service", "window_processor"]

logger = logging.getLogger("agent_events.alerts")


class AggregateService(Service):
    """Windows over ``settings.topic`` as configured by ``settings.aggregate``.

    Subclasses change what is computed and written by overriding :meth:`section`,
    :attr:`reducers` and :meth:`output_codec` (the ``sessions`` service does).
    """

    name = "aggregate"
    reducers: tuple[Reducer[Any], ...] = ()

    def __init__(self, settings: AgentEventsSettings, registry: CollectorRegistry) -> None:
        super().__init__(settings, registry)
        self.bus = EventBus()
        self.processor: WindowProcessor | None = None

    def handlers(self) -> list[HandlerSpec]:
        return []  # the processor consumes for itself, see member()

    def section(self) -> WindowSettings:
        """This service's settings section."""
        return self.settings.aggregate

    def output_codec(self) -> AggregateEncoder | None:
        """How results are written; ``None``: ``WindowAggregate`` records."""
        return None

    def member(self, config: ConsumerConfig) -> WindowProcessor:
        """The window processor, built from the host's consumer config and our section."""
        processor = window_processor(
            self.settings,
            config,
            self.section(),
            reducers=self.reducers,
            output_codec=self.output_codec(),
            alert_bus=self.bus,
        )
        self.registry.register(WindowMetricsCollector(config.group_id, processor.metrics_snapshot))
        self.processor = processor
        return processor

    async def start(self) -> None:
        await self.bus.subscribe(EventType.CUSTOM, _log_alert)

    async def stop(self) -> None:
        await self.bus.stop()

    async def summary(self) -> dict[str, Any]:
        processor = self.processor
        if processor is None:
            return {}
        metrics = dataclasses.asdict(processor.metrics_snapshot())
        return {
            "window": str(processor.config.definition),
            "grace_ms": processor.config.definition.grace_ms,
            "guarantee": processor.guarantee,
            **metrics,
        }


async def _log_alert(event: SystemEvent) -> None:
    meta = event.metadata
    logger.warning(
        "%s %s events for agent %s in window %s .. %s (threshold %s)",
        meta.get("count"),
        meta.get("source_event_type"),
        event.agent_id,
        meta.get("window_start"),
        meta.get("window_end"),
        meta.get("threshold"),
        extra={"alert_kind": meta.get("kind"), "window_key": meta.get("key")},
    )


def window_processor(
    settings: AgentEventsSettings,
    config: ConsumerConfig,
    section: WindowSettings,
    *,
    reducers: tuple[Reducer[Any], ...] = (),
    output_codec: AggregateEncoder | None = None,
    alert_bus: EventBus | None = None,
) -> WindowProcessor:
    """A window processor as a service's group member: the host's consumer config (group,
    topics, tuning), the process's connection and value format, and a window section."""
    window = WindowedAggregationConfig(
        **settings.connection().model_dump(),
        **{name: getattr(config, name) for name in ValueFormatConfig.model_fields},
        **{name: getattr(config, name) for name in GroupMemberTuning.model_fields},
        **section.model_dump(include=set(WindowTuning.model_fields)),
        topics=config.topics,
        group_id=config.group_id,
        dlq_topic=config.dlq_topic,
        window=parse_window(section.window, grace=section.grace),
    )
    return WindowProcessor(
        window, reducers=reducers, output_codec=output_codec, alert_bus=alert_bus
    )


def build_aggregate_service(
    settings: AgentEventsSettings, registry: CollectorRegistry
) -> AggregateService:
    """The ``aggregate`` entry of the service registry."""
    return AggregateService(settings, registry)
