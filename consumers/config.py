"""Settings of a consumer-group service, validated up front."""

from __future__ import annotations

from typing import Any, Literal, Self, TypedDict

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent_events.producers.config import DEFAULT_TOPIC, KafkaConnectionConfig
from agent_events.schemas.registry import ValueFormatConfig, ValueFormatOptions
from agent_events.transport import ConnectionOptions

__all__ = [
    "DEFAULT_DLQ_TOPIC",
    "ConsumerConfig",
    "ConsumerOptions",
    "ConsumerTuning",
    "ConsumerTuningOptions",
    "GroupMemberOptions",
    "GroupMemberTuning",
    "Ordering",
]

DEFAULT_DLQ_TOPIC = "agent.events.dlq"

Ordering = Literal["partition", "key"]


class GroupMemberTuning(BaseModel):
    """The knobs every consumer-group member has, handler services and windows alike.

    Declared once: :class:`ConsumerConfig`, the services' ``[consumer]`` settings section
    and :class:`~consumers.windows.WindowedAggregationConfig` all inherit them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    group_instance_id: str | None = Field(
        default=None,
        description="Static membership id: a restart within the session timeout does not rebalance.",
    )
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    max_poll_interval_ms: int = Field(default=300_000, ge=1_000)
    max_poll_records: int = Field(default=1_000, ge=1)
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        default="earliest", description="Where a group without a committed offset starts."
    )
    commit_interval_s: float = Field(default=0.5, gt=0)

    @model_validator(mode="after")
    def _heartbeat_below_session(self) -> Self:
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be below session_timeout_ms")
        return self


class ConsumerTuning(GroupMemberTuning):
    """How a handler service orders, retries and drains: the ``[consumer]`` settings section."""

    ordering: Ordering = "partition"
    max_concurrent_keys: int = Field(default=64, ge=1)
    handler_timeout_s: float | None = Field(default=30.0, gt=0)
    max_retries: int = Field(
        default=3, ge=0, description="Retries after the first failure, before the DLQ."
    )
    retry_backoff_s: float = Field(default=0.2, ge=0)
    retry_backoff_max_s: float = Field(default=5.0, ge=0)
    max_buffered_per_partition: int = Field(
        default=1_000,
        ge=1,
        description="Fetched-but-unhandled records per partition before it is paused.",
    )
    drain_timeout_s: float = Field(
        default=30.0,
        ge=0,
        description="How long stop() and a revocation wait for in-flight records.",
    )
    isolation_level: Literal["read_uncommitted", "read_committed"] = "read_committed"


class ConsumerConfig(KafkaConnectionConfig, ConsumerTuning, ValueFormatConfig):
    """One consumer-group service: what it reads, how it orders, retries and dead-letters.

    ``ordering="partition"`` handles a partition's records one at a time in offset
    order (partitions run concurrently). ``ordering="key"`` keeps each key (session)
    in order but runs up to ``max_concurrent_keys`` keys of one partition at once,
    committing the highest offset below which every record is done.
    """

    topics: list[str] = Field(default_factory=lambda: [DEFAULT_TOPIC], min_length=1)
    group_id: str = Field(min_length=1)
    dlq_topic: str | None = Field(
        default=DEFAULT_DLQ_TOPIC,
        description="None disables the DLQ: failed records are logged and skipped.",
    )

    @field_validator("topics")
    @classmethod
    def _non_empty_topics(cls, value: list[str]) -> list[str]:
        if any(not t.strip() for t in value):
            raise ValueError("topic names must not be empty")
        return value

    @model_validator(mode="after")
    def _dlq_is_not_an_input(self) -> ConsumerConfig:
        if self.dlq_topic is not None and self.dlq_topic in self.topics:
            raise ValueError(
                f"dlq_topic {self.dlq_topic!r} is also an input topic; that would loop"
            )
        return self

    def consumer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``AIOKafkaConsumer`` (manual commits, our timeouts)."""
        kwargs = self.client_kwargs()
        kwargs.update(
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset=self.auto_offset_reset,
            max_poll_records=self.max_poll_records,
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=self.heartbeat_interval_ms,
            max_poll_interval_ms=self.max_poll_interval_ms,
            isolation_level=self.isolation_level,
        )
        if self.group_instance_id:
            kwargs["group_instance_id"] = self.group_instance_id
        return kwargs


class GroupMemberOptions(TypedDict, total=False):
    """:class:`GroupMemberTuning`'s fields as typed keyword arguments."""

    group_instance_id: str | None
    session_timeout_ms: int
    heartbeat_interval_ms: int
    max_poll_interval_ms: int
    max_poll_records: int
    auto_offset_reset: Literal["earliest", "latest"]
    commit_interval_s: float


class ConsumerTuningOptions(GroupMemberOptions, total=False):
    """:class:`ConsumerTuning`'s fields as typed keyword arguments (``App(...)``)."""

    ordering: Ordering
    max_concurrent_keys: int
    handler_timeout_s: float | None
    max_retries: int
    retry_backoff_s: float
    retry_backoff_max_s: float
    max_buffered_per_partition: int
    drain_timeout_s: float
    isolation_level: Literal["read_uncommitted", "read_committed"]


class ConsumerOptions(ConnectionOptions, ConsumerTuningOptions, ValueFormatOptions, total=False):
    """:class:`ConsumerConfig`'s fields as typed keyword arguments (``ConsumerService(...)``)."""

    topics: list[str]
    group_id: str
    dlq_topic: str | None
