"""The one exception hierarchy of agent-events.

Every error a user can cause or meet derives from :class:`AgentEventsError`, so
``except AgentEventsError`` catches all of ours and nothing of anybody else's.
Messages say what happened and what to do next; the CLI prints them as one line
and exits with code 2.

::

    AgentEventsError
    ├── ConfigError                 a setting or argument is invalid
    ├── InvalidEventError           an event cannot be built or published as given
    ├── SessionNotFound             a session or checkpoint is unknown, expired or evicted
    ├── BusError
    │   ├── QueueFull               publish_sync found a subscriber queue full
    │   ├── BusClosed               the bus was stopped or its loop is gone
    │   ├── SubscriptionError       subscribe got something that is not a type or handler
    │   └── HandlerTimeout          a handler ran longer than its timeout
    ├── CodecError
    │   ├── EncodeError             an event does not fit the Avro schema
    │   └── DecodeError             bytes are not a valid event
    │       ├── UnknownSchemaError  the writer fingerprint is not known here
    │       └── MalformedEventError truncated bytes, bad magic, garbage
    ├── KafkaError
    │   ├── BrokerUnavailable       no broker answered within the deadline
    │   ├── AuthenticationFailed    the broker refused the credentials (not retried)
    │   ├── UnsupportedByBroker     the broker lacks a feature the call needs
    │   └── ProduceError            a record was not acknowledged
    │       └── RecordTooLarge      the broker refused the record's size
    ├── BrokerSetupError            a local broker could not be installed or started
    │   └── ToolMissing             a JDK, Maven or Tansu is not installed
    └── SinkError                   a service's sink (webhook, database) failed after retries
"""

from __future__ import annotations

__all__ = [
    "AgentEventsError",
    "AuthenticationFailed",
    "BrokerSetupError",
    "BrokerUnavailable",
    "BusClosed",
    "BusError",
    "CodecError",
    "ConfigError",
    "DecodeError",
    "EncodeError",
    "HandlerTimeout",
    "InvalidEventError",
    "KafkaError",
    "MalformedEventError",
    "ProduceError",
    "QueueFull",
    "RecordTooLarge",
    "SessionNotFound",
    "SinkError",
    "SubscriptionError",
    "ToolMissing",
    "UnknownSchemaError",
    "UnsupportedByBroker",
]


class AgentEventsError(Exception):
    """Root of every error agent-events raises on purpose."""


class ConfigError(AgentEventsError, ValueError):
    """A setting, argument or configuration file is invalid."""


class InvalidEventError(AgentEventsError, ValueError):
    """An event cannot be built or published as given (for example ``EventType.ANY``)."""


class SessionNotFound(AgentEventsError, LookupError):
    """A session or checkpoint id is unknown: never created, expired, or evicted for room."""


class BusError(AgentEventsError):
    """The in-process bus could not take or deliver an event."""


class QueueFull(BusError):
    """A subscriber's bounded queue is full, so ``publish_sync`` could not enqueue.

    ``await publish()`` waits for room instead (backpressure); ``publish_sync`` cannot
    wait, so it refuses the whole event (no subscriber receives it) and raises this.
    """


class BusClosed(BusError):
    """The bus is stopped, or the event loop it is bound to is no longer running."""


class SubscriptionError(BusError, TypeError):
    """``subscribe`` was given something that is not an event type or a handler."""


class HandlerTimeout(BusError, TimeoutError):
    """A handler ran longer than its timeout and was cancelled; other handlers went on."""


class CodecError(AgentEventsError):
    """An event could not be converted to or from its Avro wire form."""


class EncodeError(CodecError, ValueError):
    """An event does not fit the Avro schema (for example metadata that is not JSON)."""


class DecodeError(CodecError, ValueError):
    """Bytes are not a valid encoded event; a consumer dead-letters such a record."""


class UnknownSchemaError(DecodeError):
    """The writer schema fingerprint is not one this reader knows."""


class MalformedEventError(DecodeError):
    """Truncated bytes, a wrong magic marker, or garbage that is not Avro."""


class KafkaError(AgentEventsError):
    """An operation against a Kafka broker failed."""


class BrokerUnavailable(KafkaError):
    """No broker answered within the deadline; check ``bootstrap_servers`` and the broker."""


class AuthenticationFailed(KafkaError):
    """The broker refused the client's credentials or mechanism; retrying cannot help.

    The message names the servers, the mechanism and the user, never the password.
    """


class UnsupportedByBroker(KafkaError):
    """The broker lacks a feature this call needs, so the result would be wrong."""


class ProduceError(KafkaError):
    """A record was not acknowledged by the broker."""


class RecordTooLarge(ProduceError):
    """The record is larger than the producer's or the broker's size limit."""


class BrokerSetupError(AgentEventsError):
    """A local broker could not be installed, formatted or started."""


class ToolMissing(BrokerSetupError):
    """A program the local broker needs (JDK, Maven, Tansu) is not installed."""


class SinkError(AgentEventsError):
    """A service's sink (alert webhook, event database) refused or did not answer after retries.

    The handler raises it, so the consumer retries the record and then dead-letters it
    with this message; re-drive it once the sink is back.
    """
