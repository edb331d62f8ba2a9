"""SystemEvent <-> Avro bytes: the value format of every record on ``agent.events``.

The wire form is ``system_event.avsc`` framed as Avro single-object encoding (see
:mod:`schemas.avro`). Every field round-trips losslessly: timestamps keep their
microseconds and come back timezone-aware UTC, metadata travels as compact JSON text
(so big integers and nested values survive, and readers in other languages parse it
with any JSON library), and a custom event type travels as ``(namespace, value)``.
A reader that has registered the custom enum gets its member back; one that has not
gets a :class:`~agent_runtime.events.ForeignEventType` with the same value.

The codec is on the producer's and the consumer's hot path, so schemas and the
header are prepared once, and decoding a record written with the reader's own
schema builds the event with ``model_construct`` from values fastavro has already
typed, skipping pydantic validation that could not fail.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

from pydantic import ValidationError

from agent_events.agent_runtime.errors import EncodeError, MalformedEventError
from agent_events.agent_runtime.events import (
    EventType,
    SystemEvent,
    event_type_key,
    resolve_event_type,
)
from agent_events.schemas.avro import (
    AvroSchemaStore,
    SingleObjectCodec,
    load_schema,
    schema_fingerprint,
)

__all__ = [
    "CONFLUENT_CONTENT_TYPE",
    "CONFLUENT_MAGIC",
    "CONTENT_TYPE",
    "SYSTEM_EVENT_FINGERPRINT",
    "SYSTEM_EVENT_SCHEMA",
    "EventCodec",
    "decode_event",
    "encode_event",
]

SYSTEM_EVENT_SCHEMA: Final[dict[str, Any]] = load_schema("system_event")
"""The current writer (and reader) schema of :class:`SystemEvent`, as JSON data."""

SYSTEM_EVENT_FINGERPRINT: Final[bytes] = schema_fingerprint(SYSTEM_EVENT_SCHEMA)
"""CRC-64-AVRO fingerprint of :data:`SYSTEM_EVENT_SCHEMA`, little-endian, as framed."""

CONTENT_TYPE: Final = "application/avro; encoding=single-object; record=agent_events.SystemEvent"
"""The ``content-type`` header value of encoded events.

It names the framing and the record, not the schema version: the version is the
fingerprint inside the value, so a reader on another version still accepts it.
"""

CONFLUENT_CONTENT_TYPE: Final = (
    "application/avro; encoding=confluent-schema-registry; record=agent_events.SystemEvent"
)
"""The ``content-type`` header value of events in the Schema Registry wire format.

Readers decide by the value's first byte, not by this header (tools such as Kafka Connect
write no header): ``00`` is the registry framing, ``C3 01`` single-object.
"""

CONFLUENT_MAGIC: Final = b"\x00"
"""First byte of a value in the Schema Registry wire format (then a 4-byte schema id)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} overflows a float")
    return value


# Built once: json.dumps/json.loads with non-default options build a new coder per call.
_JSON_ENCODER: Final = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), check_circular=True
)
_JSON_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


class EventCodec:
    """Encodes :class:`SystemEvent` as single-object Avro and decodes it back.

    ``decode`` accepts events written with any schema in ``store`` (older or newer
    producers) and resolves them to :data:`SYSTEM_EVENT_SCHEMA`. Failures are
    :class:`EncodeError` on encode and :class:`DecodeError` subclasses on decode, never
    anything else, so a consumer can dead-letter a bad record and go on.
    """

    __slots__ = ("_avro", "_fingerprint")

    needs_prepare: bool = False
    """Whether ``prepare`` may do I/O; runtimes skip the await when it cannot."""

    content_type: str = CONTENT_TYPE
    """The ``content-type`` header value of what ``encode`` writes."""

    def __init__(self, store: AvroSchemaStore | None = None) -> None:
        self._avro = SingleObjectCodec(SYSTEM_EVENT_SCHEMA, store)
        self._fingerprint = self._avro.fingerprint

    @property
    def fingerprint(self) -> bytes:
        """The fingerprint this codec writes (:data:`SYSTEM_EVENT_FINGERPRINT`)."""
        return self._fingerprint

    @property
    def store(self) -> AvroSchemaStore:
        """The writer schemas ``decode`` accepts; register older versions here."""
        return self._avro.store

    async def prepare_topic(self, topic: str) -> None:
        """Get ready to encode for ``topic``; single-object framing needs nothing."""

    def is_prepared(self, topic: str) -> bool:
        """Whether ``encode_for`` can write to ``topic`` now (always, here)."""
        return True

    async def prepare(self, value: bytes | None) -> None:
        """Get ready to decode ``value``; single-object framing needs nothing."""

    def encode(self, event: SystemEvent) -> bytes:
        """The event's single-object Avro bytes; raises :class:`EncodeError`."""
        return self._avro.encode(self.to_record(event))

    def encode_for(self, event: SystemEvent, topic: str) -> bytes:
        """The event's bytes for ``topic`` (the framing here does not depend on it)."""
        return self.encode(event)

    def decode(self, data: bytes) -> SystemEvent:
        """The event encoded in ``data``; raises a :class:`DecodeError` subclass."""
        record = self._avro.decode(data)
        return self.from_record(record, trusted=data[2:10] == self._fingerprint)

    @staticmethod
    def to_record(event: SystemEvent) -> dict[str, Any]:
        """The Avro record (a dict shaped by :data:`SYSTEM_EVENT_SCHEMA`) of ``event``."""
        event_type = event.event_type
        if event_type is EventType.ANY:
            raise EncodeError(
                "EventType.ANY is a subscription wildcard; give the event a real type"
            )
        namespace, value = event_type_key(event_type)
        try:
            metadata = _JSON_ENCODER.encode(event.metadata)
        except (ValueError, TypeError, RecursionError) as exc:
            raise EncodeError(
                f"event {event.event_id} metadata is not JSON-serialisable ({exc}); "
                "keep metadata to JSON values without NaN or Infinity"
            ) from exc
        return {
            "event_id": event.event_id,
            "event_type": value,
            "event_type_namespace": namespace,
            "agent_id": event.agent_id,
            "user_id": event.user_id,
            "session_id": event.session_id,
            "timestamp": event.timestamp,
            "metadata": metadata,
            "execution_time_ms": event.execution_time_ms,
            "error_message": event.error_message,
            "error_type": event.error_type,
        }

    @staticmethod
    def from_record(record: dict[str, Any], *, trusted: bool = False) -> SystemEvent:
        """The event for a decoded record; raises :class:`MalformedEventError`.

        ``trusted`` means fastavro read the record with :data:`SYSTEM_EVENT_SCHEMA` as
        the writer schema, so every value already has its final type and the event
        is built without validation. Otherwise it is validated.
        """
        try:
            metadata = _JSON_DECODER.decode(record["metadata"])
        except (ValueError, RecursionError) as exc:
            raise MalformedEventError(f"metadata is not valid JSON: {exc}") from exc
        if type(metadata) is not dict:
            raise MalformedEventError(
                f"metadata must be a JSON object, got {type(metadata).__name__}"
            )
        event_type = resolve_event_type(record["event_type_namespace"], record["event_type"])
        if event_type is EventType.ANY:
            raise MalformedEventError("event_type '*' is the subscription wildcard, not a type")
        values = {  # in the model's field order, as pydantic keeps them
            "event_type": event_type,
            "agent_id": record["agent_id"],
            "user_id": record["user_id"],
            "session_id": record["session_id"],
            "timestamp": record["timestamp"],
            "metadata": metadata,
            "execution_time_ms": record["execution_time_ms"],
            "error_message": record["error_message"],
            "error_type": record["error_type"],
            "event_id": record["event_id"],
        }
        if trusted:
            return _construct(values)
        try:
            return SystemEvent.model_validate(values)
        except ValidationError as exc:
            raise MalformedEventError(f"decoded record is not a valid SystemEvent: {exc}") from exc


_EVENT_FIELDS: Final = frozenset(SystemEvent.model_fields)


def _construct(values: dict[str, Any]) -> SystemEvent:
    """``SystemEvent.model_construct(**values)`` for a record that names every field.

    What pydantic's ``model_construct`` does for a model without private attributes or
    extra fields, without its per-field loop (a fifth of decoding an event): the values
    are already the fields' final types (see :meth:`EventCodec.from_record`).
    """
    event = SystemEvent.__new__(SystemEvent)
    _set = object.__setattr__
    _set(event, "__dict__", values)
    _set(event, "__pydantic_fields_set__", set(_EVENT_FIELDS))
    _set(event, "__pydantic_extra__", None)
    _set(event, "__pydantic_private__", None)
    return event


_DEFAULT_CODEC: Final = EventCodec()


def encode_event(event: SystemEvent) -> bytes:
    """Encode ``event`` with the current schema; raises :class:`EncodeError`."""
    return _DEFAULT_CODEC.encode(event)


def decode_event(data: bytes) -> SystemEvent:
    """Decode an event written with the current schema; raises a :class:`DecodeError`.

    Readers that must accept other schema versions use an :class:`EventCodec` whose
    store has those versions registered.
    """
    return _DEFAULT_CODEC.decode(data)
