"""Typed, validated Kafka client settings, named as Kafka users know them.

aiokafka's defaults are weak for an event backbone (``acks=1``, no idempotence,
auto-commit); ours are set explicitly here, once, and every client is built from
these models so producer, consumer and admin clients agree on security settings.
"""

from __future__ import annotations

import ssl
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from agent_events.agent_runtime.errors import ConfigError

__all__ = ["DEFAULT_TOPIC", "KafkaConnectionConfig", "ProducerConfig"]

DEFAULT_TOPIC = "agent.events"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI"]


class KafkaConnectionConfig(BaseModel):
    """Where the brokers are and how to authenticate: shared by every client."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Comma-separated host:port list of brokers."
    )
    client_id: str | None = Field(default=None, description="Client id shown in broker logs.")
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    request_timeout_ms: int = Field(default=30_000, ge=1_000)
    connect_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="How long start() retries an unreachable broker (with backoff) before giving up.",
    )

    @field_validator("bootstrap_servers")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        hosts = [h.strip() for h in value.split(",") if h.strip()]
        if not hosts:
            raise ValueError("bootstrap_servers is empty; give host:port[,host:port...]")
        for host in hosts:
            name, sep, port = host.rpartition(":")
            if not sep or not name or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"bootstrap server {host!r} is not host:port")
        return ",".join(hosts)

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client (producer, consumer, admin)."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if self.client_id:
            kwargs["client_id"] = self.client_id
        if self.security_protocol.startswith("SASL"):
            if self.sasl_mechanism is None:
                raise ConfigError(
                    f"security_protocol {self.security_protocol} needs sasl_mechanism"
                )
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_plain_username
            if self.sasl_plain_password is not None:
                kwargs["sasl_plain_password"] = self.sasl_plain_password.get_secret_value()
        if self.security_protocol in ("SSL", "SASL_SSL"):
            kwargs["ssl_context"] = self._ssl_context()
        return kwargs

    def _ssl_context(self) -> ssl.SSLContext:
        try:
            context = ssl.create_default_context(cafile=self.ssl_cafile)
            if self.ssl_certfile:
                context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the SSL files: {exc}") from exc
        return context


class ProducerConfig(KafkaConnectionConfig):
    """Producer settings; the defaults are the safe ones (idempotent, ``acks=all``)."""

    topic: str = Field(default=DEFAULT_TOPIC, min_length=1)
    acks: Literal["all", 1, 0] = "all"
    enable_idempotence: bool = True
    require_idempotence: bool = Field(
        default=False,
        description="Fail at start when the broker refuses idempotence, instead of warning and going on.",
    )
    linger_ms: int = Field(default=5, ge=0)
    max_batch_size: int = Field(default=256 * 1024, ge=1024)
    max_request_size: int = Field(default=1024 * 1024, ge=1024)
    compression_type: Literal["gzip", "snappy", "lz4", "zstd"] | None = None
    retry_backoff_ms: int = Field(default=100, ge=0)
    sequence_cache_size: int = Field(
        default=100_000,
        ge=1,
        description="Sessions whose sequence counters are kept; the least recent are forgotten.",
    )

    @model_validator(mode="after")
    def _idempotence_needs_acks_all(self) -> ProducerConfig:
        if self.enable_idempotence and self.acks != "all":
            raise ValueError(
                "enable_idempotence needs acks='all' (or set enable_idempotence=False)"
            )
        return self

    def producer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``AIOKafkaProducer``."""
        kwargs = self.client_kwargs()
        kwargs.update(
            acks=self.acks,
            enable_idempotence=self.enable_idempotence,
            linger_ms=self.linger_ms,
            max_batch_size=self.max_batch_size,
            max_request_size=self.max_request_size,
            compression_type=self.compression_type,
            retry_backoff_ms=self.retry_backoff_ms,
        )
        return kwargs
