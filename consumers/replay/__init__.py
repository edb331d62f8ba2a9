"""Replay a topic from an offset, a timestamp or a shift into a handler, a service, a topic or a file.

::

    spec = ReplaySpec("agent.events", start=FromTime(yesterday), session_id="sess_42")
    async with SQLiteEventStore("rebuilt.db") as store:
        report = await replay(connection, spec, HandlerSink(EventSourcingHandler(store)))

:class:`ReplaySpec` says what to read (validated without a broker); :func:`plan_replay`
turns it into offsets per partition (a dry run); :func:`replay` reads those ranges and
delivers them, in offset order per partition, to a :class:`ReplaySink`. A replay never
joins a consumer group, so no group's committed offsets move (``consumers.groups`` resets
them, on request).
"""

from agent_events.consumers.replay.plan import (
    FeatureCheck,
    PartitionRange,
    ReplayPlan,
    resolve_plan,
)
from agent_events.consumers.replay.run import (
    ProgressCallback,
    ReplayProgress,
    ReplayReport,
    plan_replay,
    replay,
)
from agent_events.consumers.replay.sinks import (
    HandlerSink,
    JsonLinesSink,
    ReplaySink,
    ServiceSink,
    TopicSink,
)
from agent_events.consumers.replay.spec import (
    FromBeginning,
    FromOffsets,
    FromShift,
    FromTime,
    ReplaySpec,
    StartAt,
    StopAt,
    UntilEnd,
    UntilOffsets,
    UntilTime,
    epoch_ms,
    parse_moment,
    parse_offsets,
)

__all__ = [
    "FeatureCheck",
    "FromBeginning",
    "FromOffsets",
    "FromShift",
    "FromTime",
    "HandlerSink",
    "JsonLinesSink",
    "PartitionRange",
    "ProgressCallback",
    "ReplayPlan",
    "ReplayProgress",
    "ReplayReport",
    "ReplaySink",
    "ReplaySpec",
    "ServiceSink",
    "StartAt",
    "StopAt",
    "TopicSink",
    "UntilEnd",
    "UntilOffsets",
    "UntilTime",
    "epoch_ms",
    "parse_moment",
    "parse_offsets",
    "plan_replay",
    "replay",
    "resolve_plan",
]
