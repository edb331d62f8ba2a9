"""The wire contract of agent-events: Avro schemas (``*.avsc``) and their codecs.

:mod:`schemas.avro` frames any record schema as Avro single-object encoding and
keeps the known writer schemas; :mod:`schemas.codec` maps :class:`SystemEvent` onto
``system_event.avsc``. Producers and consumers use :func:`encode_event` and
:func:`decode_event`, or an :class:`EventCodec` whose store accepts older schemas.
:mod:`schemas.registry` adds the Confluent Schema Registry wire format as an option
(:class:`ConfluentEventCodec`); :func:`make_event_codec` picks the codec for a format.
"""

from agent_events.schemas.avro import (
    FINGERPRINT_SIZE,
    HEADER_SIZE,
    SINGLE_OBJECT_MAGIC,
    AvroSchemaStore,
    ParsedSchema,
    SingleObjectCodec,
    load_schema,
    schema_fingerprint,
)
from agent_events.schemas.codec import (
    CONFLUENT_CONTENT_TYPE,
    CONFLUENT_MAGIC,
    CONTENT_TYPE,
    SYSTEM_EVENT_FINGERPRINT,
    SYSTEM_EVENT_SCHEMA,
    EventCodec,
    decode_event,
    encode_event,
)
from agent_events.schemas.registry import (
    CONFLUENT_HEADER_SIZE,
    ConfluentEventCodec,
    SchemaRegistryClient,
    ValueFormat,
    ValueFormatConfig,
    ValueFormatOptions,
    make_event_codec,
    schema_text,
    subject_for,
)

__all__ = [
    "CONFLUENT_CONTENT_TYPE",
    "CONFLUENT_HEADER_SIZE",
    "CONFLUENT_MAGIC",
    "CONTENT_TYPE",
    "FINGERPRINT_SIZE",
    "HEADER_SIZE",
    "SINGLE_OBJECT_MAGIC",
    "SYSTEM_EVENT_FINGERPRINT",
    "SYSTEM_EVENT_SCHEMA",
    "AvroSchemaStore",
    "ConfluentEventCodec",
    "EventCodec",
    "ParsedSchema",
    "SchemaRegistryClient",
    "SingleObjectCodec",
    "ValueFormat",
    "ValueFormatConfig",
    "ValueFormatOptions",
    "decode_event",
    "encode_event",
    "load_schema",
    "make_event_codec",
    "schema_fingerprint",
    "schema_text",
    "subject_for",
]
