"""The wire contract of agent-events: Avro schemas (``*.avsc``) and their codecs.

:mod:`schemas.avro` frames any record schema as Avro single-object encoding and
keeps the known writer schemas; :mod:`schemas.codec` maps :class:`SystemEvent` onto
``system_event.avsc``. Producers and consumers use :func:`encode_event` and
:func:`decode_event`, or an :class:`EventCodec` whose store accepts older schemas.
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
    CONTENT_TYPE,
    SYSTEM_EVENT_FINGERPRINT,
    SYSTEM_EVENT_SCHEMA,
    EventCodec,
    decode_event,
    encode_event,
)

__all__ = [
    "CONTENT_TYPE",
    "FINGERPRINT_SIZE",
    "HEADER_SIZE",
    "SINGLE_OBJECT_MAGIC",
    "SYSTEM_EVENT_FINGERPRINT",
    "SYSTEM_EVENT_SCHEMA",
    "AvroSchemaStore",
    "EventCodec",
    "ParsedSchema",
    "SingleObjectCodec",
    "decode_event",
    "encode_event",
    "load_schema",
    "schema_fingerprint",
]
