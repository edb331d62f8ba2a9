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
    DEFAULT_KEY_FIELDS,
    KEY_FIELDS,
    Aggregations,
    KeyFunction,
    Reducer,
    WindowState,
    WindowValues,
    event_time_ms,
    is_error,
    key_function,
)
from agent_events.consumers.windows.codec import (
    WINDOW_AGGREGATE_CONTENT_TYPE,
    WINDOW_AGGREGATE_SCHEMA,
    WindowAggregate,
    WindowAggregateCodec,
)
from agent_events.consumers.windows.commit import (
    AtLeastOnceCommitter,
    Committer,
    TransactionalCommitter,
)
from agent_events.consumers.windows.config import (
    DEFAULT_AGGREGATES_TOPIC,
    GuaranteeSetting,
    ProcessingGuarantee,
    WindowedAggregationConfig,
    WindowSettings,
)
from agent_events.consumers.windows.definitions import (
    HoppingWindow,
    SlidingWindow,
    TumblingWindow,
    WindowDefinition,
    WindowKind,
    format_duration,
    parse_duration,
    parse_window,
)
from agent_events.consumers.windows.engine import WindowEngine, WindowResult
from agent_events.consumers.windows.metrics import WindowMetrics, WindowMetricsCollector
from agent_events.consumers.windows.processor import WindowProcessor
from agent_events.consumers.windows.rekey import RekeyTask
from agent_events.consumers.windows.state import (
    META_KEY,
    EntryKey,
    RestoreReport,
    WindowStore,
    restore_stores,
)
from agent_events.consumers.windows.tasks import (
    LATE_HEADER_PREFIX,
    AggregateTask,
    Outgoing,
    PartitionTask,
    TaskCounters,
)
from agent_events.consumers.windows.topics import (
    CHANGELOG_TOPIC_CONFIGS,
    TopicLayout,
    ensure_window_topics,
)
from agent_events.consumers.windows.trigger import ThresholdAlert, ThresholdTrigger
from agent_events.consumers.windows.watermarks import (
    CONTROL_HEADER,
    WATERMARK_CONTROL,
    WATERMARK_HEADER,
    effective_watermark,
)

__all__ = [
    "CHANGELOG_TOPIC_CONFIGS",
    "CONTROL_HEADER",
    "DEFAULT_AGGREGATES_TOPIC",
    "DEFAULT_KEY_FIELDS",
    "KEY_FIELDS",
    "LATE_HEADER_PREFIX",
    "META_KEY",
    "WATERMARK_CONTROL",
    "WATERMARK_HEADER",
    "WINDOW_AGGREGATE_CONTENT_TYPE",
    "WINDOW_AGGREGATE_SCHEMA",
    "AggregateTask",
    "Aggregations",
    "AtLeastOnceCommitter",
    "Committer",
    "EntryKey",
    "GuaranteeSetting",
    "HoppingWindow",
    "KeyFunction",
    "Outgoing",
    "PartitionTask",
    "ProcessingGuarantee",
    "Reducer",
    "RekeyTask",
    "RestoreReport",
    "SlidingWindow",
    "TaskCounters",
    "ThresholdAlert",
    "ThresholdTrigger",
    "TopicLayout",
    "TransactionalCommitter",
    "TumblingWindow",
    "WindowAggregate",
    "WindowAggregateCodec",
    "WindowDefinition",
    "WindowEngine",
    "WindowKind",
    "WindowMetrics",
    "WindowMetricsCollector",
    "WindowProcessor",
    "WindowResult",
    "WindowSettings",
    "WindowState",
    "WindowStore",
    "WindowValues",
    "WindowedAggregationConfig",
    "effective_watermark",
    "ensure_window_topics",
    "event_time_ms",
    "format_duration",
    "is_error",
    "key_function",
    "parse_duration",
    "parse_window",
    "restore_stores",
]
