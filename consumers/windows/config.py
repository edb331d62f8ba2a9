"""Settings of a windowed-aggregation processor, validated up front.

Topic names follow the design's contract: the output is ``agent.events.aggregates``;
state goes to ``<group>.<store>.changelog`` (compacted) and, when the window key is
not the partition key, events are re-keyed through ``<group>.<store>.repartition``,
as Kafka Streams names its internal topics.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent_events.consumers.config import (
    DEFAULT_DLQ_TOPIC,
    ConsumerConfig,
    GroupMemberOptions,
    GroupMemberTuning,
)
from agent_events.consumers.windows.aggregations import DEFAULT_KEY_FIELDS, KEY_FIELDS
from agent_events.consumers.windows.definitions import (
    HoppingWindow,
    SessionWindow,
    SlidingWindow,
    TumblingWindow,
    WindowDefinition,
    parse_duration,
    parse_window,
)
from agent_events.producers.config import DEFAULT_TOPIC, KafkaConnectionConfig
from agent_events.schemas.registry import ValueFormatConfig, ValueFormatOptions
from agent_events.transport import ConnectionOptions

__all__ = [
    "DEFAULT_AGGREGATES_TOPIC",
    "DEFAULT_ALERTS_TOPIC",
    "DEFAULT_SESSIONS_TOPIC",
    "SESSION_KEY_FIELDS",
    "GuaranteeSetting",
    "ProcessingGuarantee",
    "SessionSettings",
    "WindowOptions",
    "WindowSettings",
    "WindowTuning",
    "WindowedAggregationConfig",
]

DEFAULT_AGGREGATES_TOPIC: Final = "agent.events.aggregates"
DEFAULT_ALERTS_TOPIC: Final = "agent.events.alerts"
DEFAULT_SESSIONS_TOPIC: Final = "agent.events.sessions"
"""Where the ``sessions`` service writes its session summaries."""

ProcessingGuarantee = Literal["exactly_once", "at_least_once"]

GuaranteeSetting = Literal["exactly_once", "at_least_once", "auto"]
"""``auto``: exactly once where the broker has transactions, else at least once (loudly)."""


SESSION_KEY_FIELDS: Final = ("session_id",)
"""The default key of session windows: one session window per agent session."""


def _default_session_key(data: Any) -> Any:
    """Session windows key by ``session_id`` unless ``key_fields`` is given."""
    if not isinstance(data, dict) or data.get("key_fields") is not None:
        return data
    window = data.get("window")
    text = window if isinstance(window, str) else str(getattr(window, "kind", ""))
    if text.strip().partition(":")[0].strip().lower() == "session":
        data = {**data, "key_fields": SESSION_KEY_FIELDS}
    return data


def _split_fields(value: Any) -> Any:
    """``"event_type, agent_id"`` (a flag or variable) -> ``("event_type", "agent_id")``."""
    if isinstance(value, str):
        return tuple(f.strip() for f in value.split(",") if f.strip())
    return value


class WindowTuning(BaseModel):
    """What an operator chooses about windows: keys, topics, alerts, guarantee.

    Declared once, with one set of defaults: the ``aggregate`` service's settings section
    (:class:`WindowSettings`) and :class:`WindowedAggregationConfig` both inherit it.
    ``processing_guarantee="auto"`` runs read-process-write in Kafka transactions where
    the broker has them (exactly once) and says loudly when it falls back to at least once;
    ``"exactly_once"`` refuses a broker without transactions.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_fields: tuple[str, ...] = Field(
        default=DEFAULT_KEY_FIELDS,
        description="Event fields of the window key; session windows default to session_id.",
    )
    store_name: str = Field(default="windows", min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    output_topic: str = DEFAULT_AGGREGATES_TOPIC
    late_topic: str | None = Field(
        default=None, description="Where events too late for every window go; None: counted only."
    )
    alerts_topic: str | None = Field(
        default=DEFAULT_ALERTS_TOPIC,
        description="Threshold alerts go here (in the transaction) when alert_threshold is "
        "set; None: on the bus only.",
    )
    alert_threshold: int | None = Field(
        default=None, ge=1, description="Fire an alert when a window's count reaches this."
    )
    emit_on_update: bool = Field(
        default=False,
        description="Also emit the current value of every updated open window at each commit.",
    )
    processing_guarantee: GuaranteeSetting = "auto"
    repartition: bool | None = None
    idle_source_after_s: float = Field(
        default=5.0,
        gt=0,
        description="An input partition without records for this long stops holding the "
        "watermark back (after a repartition).",
    )
    max_event_skew_s: float = Field(
        default=300.0,
        gt=0,
        description="An event stamped further ahead than this of its record's log-append "
        "time (or of this member's clock) goes to the late topic without moving the watermark.",
    )

    @field_validator("key_fields", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return _split_fields(value)

    @field_validator("key_fields")
    @classmethod
    def _known_fields(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [f for f in value if f not in KEY_FIELDS]
        if not value or unknown:
            raise ValueError(f"key_fields must be some of {', '.join(KEY_FIELDS)}")
        return value

    @field_validator("processing_guarantee", mode="before")
    @classmethod
    def _dashes(cls, value: Any) -> Any:
        return value.replace("-", "_") if isinstance(value, str) else value

    @property
    def alerts_output(self) -> str | None:
        """The topic alerts are written to: ``alerts_topic``, only when alerts can fire."""
        return self.alerts_topic if self.alert_threshold is not None else None


class WindowedAggregationConfig(
    KafkaConnectionConfig, ValueFormatConfig, GroupMemberTuning, WindowTuning
):
    """One windowed aggregation: what it reads, how it windows and keys, where it writes.

    The group-member knobs are :class:`~consumers.config.GroupMemberTuning`'s and the
    window knobs :class:`WindowTuning`'s (see there for ``processing_guarantee``); with
    ``"at_least_once"`` a crash may count events again and emit a window twice (see
    ``docs/WINDOWS.md``).

    ``repartition`` (default: automatic) re-keys events by the window key through
    an internal topic, so all events of a key meet in one partition. It is needed
    unless the key includes ``session_id`` (the partition key of ``agent.events``)
    or producers already key the input by the window key.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    topics: list[str] = Field(default_factory=lambda: [DEFAULT_TOPIC], min_length=1)
    group_id: str = Field(min_length=1)
    window: Any = Field(
        description="A window definition, or its text form: tumbling:60s, hopping:60s/10s, sliding:60s."
    )
    dlq_topic: str | None = DEFAULT_DLQ_TOPIC
    max_pending_records: int = Field(
        default=20_000, ge=1, description="Commit early once this many output records wait."
    )
    transaction_timeout_ms: int = Field(default=60_000, ge=1_000)
    replication_factor: int = Field(
        default=1, ge=1, description="Replication of the topics the processor creates."
    )
    restore_deadline_s: float = Field(default=300.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _parse_window(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(_default_session_key(data))
        grace = data.pop("grace", None)
        window = data.get("window")
        if isinstance(window, str):
            data["window"] = parse_window(window, grace=grace if grace is not None else 0)
        elif grace is not None and window is not None:
            data["window"] = dataclasses.replace(window, grace_ms=parse_duration(grace))
        return data

    @field_validator("window")
    @classmethod
    def _is_definition(cls, value: Any) -> WindowDefinition:
        if not isinstance(value, TumblingWindow | HoppingWindow | SlidingWindow | SessionWindow):
            raise ValueError("window must be a window definition or text like tumbling:60s")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> WindowedAggregationConfig:
        _check_alerts(self.window, self.alert_threshold)
        internal = {self.changelog_topic, self.repartition_topic}
        for name in (self.output_topic, self.late_topic, self.alerts_output, self.dlq_topic):
            if name is not None and (name in self.topics or name in internal):
                raise ValueError(
                    f"topic {name!r} is also an input or internal topic; that would loop"
                )
        if not self.repartitions and len(self.topics) > 1:
            raise ValueError(
                "several input topics need repartition=True: their partitions would share "
                "one changelog partition"
            )
        return self

    @property
    def definition(self) -> WindowDefinition:
        """The window definition (typed)."""
        window: WindowDefinition = self.window
        return window

    @property
    def repartitions(self) -> bool:
        """Whether events go through the repartition topic (see the class docstring)."""
        if self.repartition is not None:
            return self.repartition
        return "session_id" not in self.key_fields

    @property
    def changelog_topic(self) -> str:
        """``<group>.<store>.changelog``: the compacted topic backing the window state."""
        return f"{self.group_id}.{self.store_name}.changelog"

    @property
    def repartition_topic(self) -> str:
        """``<group>.<store>.repartition``: events re-keyed by the window key."""
        return f"{self.group_id}.{self.store_name}.repartition"

    @property
    def consumed_topics(self) -> list[str]:
        """Every topic the processor's consumer subscribes to."""
        return [*self.topics, self.repartition_topic] if self.repartitions else list(self.topics)

    def transactional_id(self, topic: str, partition: int) -> str:
        """``{group}-{topic}-{partition}``: one per input partition, so a new owner fences the old."""
        return f"{self.group_id}-{topic}-{partition}"

    def consumer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the group's ``AIOKafkaConsumer`` (read_committed, manual commits)."""
        consumer = ConsumerConfig(
            **self.connection().model_dump(),
            **{name: getattr(self, name) for name in GroupMemberTuning.model_fields},
            topics=self.consumed_topics,
            group_id=self.group_id,
            isolation_level="read_committed",
            dlq_topic=None,
        )
        return consumer.consumer_kwargs()


class WindowSettings(WindowTuning):
    """The ``aggregate`` service's section of the settings (flags, ``AGENT_EVENTS_AGGREGATE__*``).

    :class:`WindowTuning` plus the window as text; Kafka connection, group and topic come
    from the service's common settings. Validated when loaded, so a bad window fails at start.
    """

    window: str = Field(
        default="tumbling:60s",
        description="tumbling:SIZE, hopping:SIZE/STEP, sliding:SIZE or session:GAP.",
    )
    grace: str = Field(default="0s", description="How long late events still join a window.")

    @model_validator(mode="before")
    @classmethod
    def _session_key(cls, data: Any) -> Any:
        return _default_session_key(data)

    @model_validator(mode="after")
    def _window_parses(self) -> WindowSettings:
        _check_alerts(parse_window(self.window, grace=self.grace), self.alert_threshold)
        return self


class SessionSettings(WindowSettings):
    """The ``sessions`` service's section (``AGENT_EVENTS_SESSIONS__*``): session windows only.

    One summary per agent session (``session_id``), closed after ``window``'s gap without
    events (plus ``grace``), written to ``agent.events.sessions``.
    """

    window: str = Field(default="session:30m", description="session:GAP, e.g. session:30m.")
    grace: str = Field(default="1m", description="How long late events still join a session.")
    key_fields: tuple[str, ...] = SESSION_KEY_FIELDS
    store_name: str = Field(default="sessions", min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    output_topic: str = DEFAULT_SESSIONS_TOPIC

    @model_validator(mode="after")
    def _is_session(self) -> SessionSettings:
        if not isinstance(parse_window(self.window), SessionWindow):
            raise ValueError(
                f"the sessions service takes a session window (session:GAP), not {self.window!r}"
            )
        return self


def _check_alerts(window: WindowDefinition, threshold: int | None) -> None:
    if threshold is not None and isinstance(window, SessionWindow):
        raise ValueError(
            "alert_threshold counts events in windows of a fixed size; "
            "use a tumbling, hopping or sliding window for alerts"
        )


class WindowOptions(ConnectionOptions, ValueFormatOptions, GroupMemberOptions, total=False):
    """:class:`WindowedAggregationConfig`'s fields as typed keyword arguments.

    ``window`` also takes its text form and ``grace`` a duration (``"10s"``), as the model does.
    """

    key_fields: tuple[str, ...]
    store_name: str
    output_topic: str
    late_topic: str | None
    alerts_topic: str | None
    alert_threshold: int | None
    emit_on_update: bool
    processing_guarantee: GuaranteeSetting
    repartition: bool | None
    idle_source_after_s: float
    max_event_skew_s: float
    topics: list[str]
    group_id: str
    window: WindowDefinition | str
    grace: str | int
    dlq_topic: str | None
    max_pending_records: int
    transaction_timeout_ms: int
    replication_factor: int
    restore_deadline_s: float
