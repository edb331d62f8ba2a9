"""Windowed aggregation on event time, with state that survives crashes and rebalances.

Definitions (:mod:`.definitions`) say what to compute; the engine (:mod:`.engine`)
computes it for one partition without Kafka; the processor (:mod:`.processor`) runs
engines as a consumer-group member with state in a compacted changelog topic and,
on Apache Kafka, exactly-once output through transactions. Semantics, guarantees and
a timeline picture: ``docs/WINDOWS.md``.

::

    async with WindowProcessor(
        bootstrap_servers="127.0.0.1:9092",
        group_id="agent-rates",
        window="sliding:60s",
        grace="10s",
        alert_threshold=10,
        alert_bus=bus,
    ) as processor:
        await processor.run()
"""

from agent_events.consumers.windows.aggregations import (
    Reducer,
)
from agent_events.consumers.windows.codec import (
    WindowAggregate,
    WindowAggregateCodec,
)
from agent_events.consumers.windows.config import (
    DEFAULT_AGGREGATES_TOPIC,
    DEFAULT_SESSIONS_TOPIC,
    GuaranteeSetting,
    ProcessingGuarantee,
    SessionSettings,
    WindowedAggregationConfig,
    WindowOptions,
    WindowSettings,
    WindowTuning,
)
from agent_events.consumers.windows.definitions import (
    HoppingWindow,
    SessionWindow,
    SlidingWindow,
    TumblingWindow,
    WindowDefinition,
    parse_duration,
    parse_window,
)
from agent_events.consumers.windows.metrics import (
    WindowMetricsCollector,
)
from agent_events.consumers.windows.processor import (
    WindowProcessor,
)
from agent_events.consumers.windows.summary import (
    SESSION_REDUCERS,
    SessionSummary,
    SessionSummaryCodec,
)

__all__ = [
    "DEFAULT_AGGREGATES_TOPIC",
    "DEFAULT_SESSIONS_TOPIC",
    "SESSION_REDUCERS",
    "GuaranteeSetting",
    "HoppingWindow",
    "ProcessingGuarantee",
    "Reducer",
    "SessionSettings",
    "SessionSummary",
    "SessionSummaryCodec",
    "SessionWindow",
    "SlidingWindow",
    "TumblingWindow",
    "WindowAggregate",
    "WindowAggregateCodec",
    "WindowDefinition",
    "WindowMetricsCollector",
    "WindowOptions",
    "WindowProcessor",
    "WindowSettings",
    "WindowTuning",
    "WindowedAggregationConfig",
    "parse_duration",
    "parse_window",
]
