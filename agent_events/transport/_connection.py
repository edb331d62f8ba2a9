"""Where the brokers are and how to authenticate: the one connection model every client uses.

Producer, consumer and admin clients are all built from a :class:`KafkaConnectionConfig`
(or a model that extends it), so they agree on servers, security and timeouts. The
``client`` field names the client library behind the factories: ``aiokafka`` (the
default) or ``confluent`` (librdkafka through confluent-kafka, for
:class:`~agent_events.producers.KafkaEventProducer` and
:class:`~agent_events.consumers.ConsumerService`). Options are written once, with
aiokafka's names; :func:`rdkafka_options` says what each one is called in librdkafka.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any, Literal, Self, TypedDict

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from agent_events.agent_runtime.errors import ConfigError

__all__ = [
    "ClientKind",
    "ConnectionOptions",
    "KafkaConnectionConfig",
    "SaslMechanism",
    "SecurityProtocol",
    "rdkafka_options",
]

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI"]
ClientKind = Literal["aiokafka", "confluent"]


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
    client: ClientKind = Field(
        default="aiokafka",
        description=(
            "The Kafka client library: aiokafka, or confluent (librdkafka; the producer and "
            "consumer services only, windows, replay and admin tools run on aiokafka)."
        ),
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

    @classmethod
    def with_overrides(cls, config: Self | None, overrides: Mapping[str, Any]) -> Self:
        """``config`` with ``overrides`` applied and validated; a new config when ``None``.

        The one way a constructor taking ``config=None, **options`` builds its config.
        """
        if config is None:
            return cls(**overrides)
        if not overrides:
            return config
        current = {name: getattr(config, name) for name in cls.model_fields}
        return cls.model_validate({**current, **overrides})

    def credentials_text(self) -> str | None:
        """``SASL PLAIN as user 'reader'`` for messages (never the password); None without SASL."""
        if self.sasl_mechanism is None:
            return None
        user = f" as user {self.sasl_plain_username!r}" if self.sasl_plain_username else ""
        return f"{self.security_protocol} {self.sasl_mechanism}{user}"

    def connection(self) -> KafkaConnectionConfig:
        """Only the connection part of this model (for admin clients and readers)."""
        names = KafkaConnectionConfig.model_fields
        return KafkaConnectionConfig(**{name: getattr(self, name) for name in names})

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
            kwargs.update(self._sasl_kwargs())
        if self.security_protocol in ("SSL", "SASL_SSL"):
            kwargs["ssl_context"] = self._ssl_context()
        return kwargs

    def rdkafka_config(self) -> dict[str, Any]:
        """The connection as librdkafka configuration properties (for ``client="confluent"``)."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol.lower(),
            "socket.timeout.ms": self.request_timeout_ms,
        }
        if self.client_id:
            config["client.id"] = self.client_id
        if self.security_protocol.startswith("SASL"):
            sasl = self._sasl_kwargs()
            config["sasl.mechanism"] = sasl["sasl_mechanism"]
            if sasl["sasl_plain_username"] is not None:
                config["sasl.username"] = sasl["sasl_plain_username"]
            if "sasl_plain_password" in sasl:
                config["sasl.password"] = sasl["sasl_plain_password"]
        if self.security_protocol in ("SSL", "SASL_SSL"):
            files = {
                "ssl.ca.location": self.ssl_cafile,
                "ssl.certificate.location": self.ssl_certfile,
                "ssl.key.location": self.ssl_keyfile,
            }
            config.update({name: path for name, path in files.items() if path})
        return config

    def _sasl_kwargs(self) -> dict[str, Any]:
        if self.sasl_mechanism is None:
            raise ConfigError(f"security_protocol {self.security_protocol} needs sasl_mechanism")
        kwargs: dict[str, Any] = {
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.sasl_plain_username,
        }
        if self.sasl_plain_password is not None:
            kwargs["sasl_plain_password"] = self.sasl_plain_password.get_secret_value()
        return kwargs

    def _ssl_context(self) -> ssl.SSLContext:
        try:
            context = ssl.create_default_context(cafile=self.ssl_cafile)
            if self.ssl_certfile:
                context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the SSL files: {exc}") from exc
        return context


_CONNECTION_KWARGS = frozenset(
    {
        "bootstrap_servers",
        "client_id",
        "security_protocol",
        "request_timeout_ms",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
        "ssl_context",
    }
)
"""What :meth:`KafkaConnectionConfig.client_kwargs` yields: librdkafka takes it from the model."""

_RDKAFKA_NAMES: dict[str, str | None] = {
    # producer
    "acks": "acks",
    "enable_idempotence": "enable.idempotence",
    "linger_ms": "linger.ms",
    "max_batch_size": "batch.size",
    "max_request_size": "message.max.bytes",
    "compression_type": "compression.type",
    "retry_backoff_ms": "retry.backoff.ms",
    "partitioner": None,  # records go to the partition we chose (Java's murmur2)
    # consumer
    "group_id": "group.id",
    "group_instance_id": "group.instance.id",
    "enable_auto_commit": "enable.auto.commit",
    "auto_offset_reset": "auto.offset.reset",
    "session_timeout_ms": "session.timeout.ms",
    "heartbeat_interval_ms": "heartbeat.interval.ms",
    "max_poll_interval_ms": "max.poll.interval.ms",
    "isolation_level": "isolation.level",
    "max_poll_records": None,  # how many records one fetch returns: ours, not librdkafka's
}


def rdkafka_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Client ``options`` named as aiokafka names them, as librdkafka properties.

    Connection keywords are skipped (:meth:`KafkaConnectionConfig.rdkafka_config` has
    them); ``None`` means the library default. An option librdkafka has no counterpart
    for is a :class:`ConfigError`, not silently dropped.
    """
    config: dict[str, Any] = {}
    for name, value in options.items():
        if name in _CONNECTION_KWARGS:
            continue
        try:
            rdkafka_name = _RDKAFKA_NAMES[name]
        except KeyError:
            raise ConfigError(
                f"option {name!r} has no librdkafka counterpart; drop it or use client='aiokafka'"
            ) from None
        if rdkafka_name is None:
            continue
        if value is None:
            value = "none" if name == "compression_type" else None
        if value is not None:
            config[rdkafka_name] = value
    return config


class ConnectionOptions(TypedDict, total=False):
    """:class:`KafkaConnectionConfig`'s fields as typed keyword arguments.

    For ``**options: Unpack[...]`` in public constructors, so IDEs and mypy check a user's
    keywords; defaults and validation stay in the model (a test keeps the two in step).
    """

    bootstrap_servers: str
    client_id: str | None
    security_protocol: SecurityProtocol
    sasl_mechanism: SaslMechanism | None
    sasl_plain_username: str | None
    sasl_plain_password: SecretStr | str | None
    ssl_cafile: str | None
    ssl_certfile: str | None
    ssl_keyfile: str | None
    request_timeout_ms: int
    connect_timeout_s: float
    client: ClientKind
