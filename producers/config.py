"""Typed, validated producer settings, named as Kafka users know them.

aiokafka's defaults are weak for an event backbone (``acks=1``, no idempotence); ours
are set explicitly here, once. :class:`ProducerTuning` holds every producer knob and is
both the ``[producer]`` section of the service settings and the base of
:class:`ProducerConfig`, so a knob is declared in one place. Connection settings come
from :class:`~agent_events.transport.KafkaConnectionConfig`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent_events.schemas.registry import ValueFormatConfig, ValueFormatOptions
from agent_events.transport import ConnectionOptions, KafkaConnectionConfig, backend_for

__all__ = [
    "COMPRESSION_TYPES",
    "DEFAULT_TOPIC",
    "CompressionType",
    "KafkaConnectionConfig",
    "ProducerConfig",
    "ProducerOptions",
    "ProducerTuning",
]

DEFAULT_TOPIC = "agent.events"

CompressionType = Literal["gzip", "snappy", "lz4", "zstd"]
COMPRESSION_TYPES: tuple[str, ...] = ("gzip", "snappy", "lz4", "zstd")


class ProducerTuning(BaseModel):
    """Producer knobs; the defaults are the safe ones (idempotent, ``acks=all``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    acks: Literal["all", 1, 0] = "all"
    enable_idempotence: bool = True
    require_idempotence: bool = Field(
        default=False,
        description="Fail at start when the broker refuses idempotence, instead of warning and going on.",
    )
    linger_ms: int = Field(default=5, ge=0)
    max_batch_size: int = Field(default=256 * 1024, ge=1024)
    max_request_size: int = Field(default=1024 * 1024, ge=1024)
    compression_type: CompressionType | None = Field(
        default=None, description="gzip, snappy, lz4 or zstd (all work as installed)."
    )
    retry_backoff_ms: int = Field(default=100, ge=0)
    sequence_cache_size: int = Field(
        default=100_000,
        ge=1,
        description="Sessions whose sequence counters are kept; the least recent are forgotten.",
    )

    @model_validator(mode="after")
    def _idempotence_needs_acks_all(self) -> ProducerTuning:
        if self.enable_idempotence and self.acks != "all":
            raise ValueError(
                "enable_idempotence needs acks='all' (or set enable_idempotence=False)"
            )
        return self


class ProducerConfig(KafkaConnectionConfig, ProducerTuning, ValueFormatConfig):
    """Everything a :class:`KafkaEventProducer` needs: connection, topic, tuning, value format."""

    topic: str = Field(default=DEFAULT_TOPIC, min_length=1)

    @model_validator(mode="after")
    def _codec_installed(self) -> ProducerConfig:
        # Refused here, at load, rather than by a bare RuntimeError at start().
        codec = self.compression_type
        if codec is not None and not backend_for(self).supports_compression(codec):
            raise ValueError(
                f"compression_type {codec!r} needs its codec library, which is not "
                "installed (pip install cramjam); or use gzip"
            )
        return self

    def producer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``AIOKafkaProducer``."""
        kwargs = self.client_kwargs()
        kwargs.update(self.producer_options())
        return kwargs

    def producer_options(self) -> dict[str, Any]:
        """The producer options alone, named as aiokafka names them.

        For :func:`~agent_events.transport.producer_client` and the client backends; with
        ``client="confluent"`` each becomes its librdkafka property (``linger_ms`` ->
        ``linger.ms``, ``max_batch_size`` -> ``batch.size``, ``max_request_size`` ->
        ``message.max.bytes``, ...: :func:`~agent_events.transport._connection.rdkafka_options`).
        """
        return {
            "acks": self.acks,
            "enable_idempotence": self.enable_idempotence,
            "linger_ms": self.linger_ms,
            "max_batch_size": self.max_batch_size,
            "max_request_size": self.max_request_size,
            "compression_type": self.compression_type,
            "retry_backoff_ms": self.retry_backoff_ms,
        }


class ProducerOptions(ConnectionOptions, ValueFormatOptions, total=False):
    """:class:`ProducerConfig`'s fields as typed keyword arguments (``KafkaEventProducer(...)``)."""

    acks: Literal["all", 1, 0]
    enable_idempotence: bool
    require_idempotence: bool
    linger_ms: int
    max_batch_size: int
    max_request_size: int
    compression_type: CompressionType | None
    retry_backoff_ms: int
    sequence_cache_size: int
    topic: str
