"""The SystemEvent wire contract: framing, fingerprints, round trips and errors."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum
from importlib import resources
from typing import Any
from uuid import UUID

import fastavro.schema
import pytest

from agent_events import schemas
from agent_events.agent_runtime.errors import (
    DecodeError,
    EncodeError,
    MalformedEventError,
    UnknownSchemaError,
)
from agent_events.agent_runtime.events import (
    EventType,
    ForeignEventType,
    SystemEvent,
    register_event_types,
)
from agent_events.schemas import (
    CONTENT_TYPE,
    SINGLE_OBJECT_MAGIC,
    SYSTEM_EVENT_FINGERPRINT,
    SYSTEM_EVENT_SCHEMA,
    EventCodec,
    SingleObjectCodec,
    decode_event,
    encode_event,
    schema_fingerprint,
)
from agent_events.schemas.avro import fingerprint_text

# --- an independent CRC-64-AVRO (Rabin) implementation, straight from the Avro spec ---

_EMPTY64 = 0xC15D213AA4D7A795


def _rabin_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY64 & -(fp & 1))
        table.append(fp)
    return table


_TABLE = _rabin_table()


def crc64_avro(data: bytes) -> int:
    fp = _EMPTY64
    for byte in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp


# Published vectors (Apache Avro share/test/data/schema-tests.txt), as signed longs.
AVRO_VECTORS = [
    ('"null"', 7195948357588979594),
    ('"boolean"', -6970731678124411036),
    ('"int"', 8247732601305521295),
    ('"long"', -3434872931120570953),
    ('"string"', -8142146995180207161),
    (
        '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}',
        7843277075252814651,
    ),
]


class Mood(Enum):
    __event_namespace__ = "tests.codec.mood"
    HAPPY = "happy"
    GRUMPY = "grumpy"


register_event_types(Mood)


def typical_event(**overrides: Any) -> SystemEvent:
    fields: dict[str, Any] = {
        "event_type": EventType.AGENT_COMPLETED,
        "agent_id": "agent-42",
        "user_id": "user-7",
        "session_id": "sess-123",
        "timestamp": datetime(2024, 5, 17, 9, 30, 1, 123456, tzinfo=UTC),
        "metadata": {"model": "gpt-4o", "tokens": {"prompt": 512, "completion": 128}},
        "execution_time_ms": 1234,
    }
    fields.update(overrides)
    return SystemEvent(**fields)


def raw_codec() -> SingleObjectCodec:
    """Writes SystemEvent records as given, to craft values a producer should never send."""
    return SingleObjectCodec(SYSTEM_EVENT_SCHEMA)


def crafted(**record_overrides: Any) -> bytes:
    record = EventCodec.to_record(typical_event())
    record.update(record_overrides)
    return raw_codec().encode(record)


# --- fingerprints and framing ---


@pytest.mark.parametrize(("canonical", "expected"), AVRO_VECTORS)
def test_reference_crc64_matches_published_avro_vectors(canonical: str, expected: int) -> None:
    assert crc64_avro(canonical.encode()) == expected % 2**64


@pytest.mark.parametrize(("canonical", "expected"), AVRO_VECTORS)
def test_fastavro_fingerprint_is_little_endian_crc64(canonical: str, expected: int) -> None:
    fp = bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))
    assert fp == expected.to_bytes(8, "little", signed=True)


def test_schema_fingerprint_of_record_vector_matches_published_value() -> None:
    schema = {"type": "record", "name": "foo", "fields": [{"name": "f1", "type": "boolean"}]}
    assert schema_fingerprint(schema) == (7843277075252814651).to_bytes(8, "little", signed=True)


def test_system_event_fingerprint_is_crc64_of_parsing_canonical_form() -> None:
    canonical = fastavro.schema.to_parsing_canonical_form(SYSTEM_EVENT_SCHEMA)
    assert crc64_avro(canonical.encode()).to_bytes(8, "little") == SYSTEM_EVENT_FINGERPRINT


def test_encoded_event_starts_with_magic_and_schema_fingerprint() -> None:
    data = encode_event(typical_event())
    assert data[:2] == SINGLE_OBJECT_MAGIC == b"\xc3\x01"
    assert data[2:10] == SYSTEM_EVENT_FINGERPRINT


def test_body_is_plain_avro_binary_readable_without_our_code() -> None:
    data = encode_event(typical_event())
    parsed = fastavro.parse_schema(json.loads(json.dumps(SYSTEM_EVENT_SCHEMA)))
    record = fastavro.schemaless_reader(io.BytesIO(data[10:]), parsed, None)
    assert isinstance(record, dict)
    assert record["agent_id"] == "agent-42"
    assert json.loads(record["metadata"])["tokens"]["prompt"] == 512


# --- the schema as a contract ---


def test_schema_ships_as_package_data() -> None:
    text = resources.files("agent_events.schemas").joinpath("system_event.avsc").read_text("utf-8")
    assert json.loads(text) == SYSTEM_EVENT_SCHEMA


def test_schema_has_namespace_and_a_doc_on_every_field() -> None:
    assert SYSTEM_EVENT_SCHEMA["namespace"] == "agent_events"
    assert all(field.get("doc") for field in SYSTEM_EVENT_SCHEMA["fields"])


def test_schema_fields_cover_every_system_event_field() -> None:
    avro_fields = {field["name"] for field in SYSTEM_EVENT_SCHEMA["fields"]}
    assert avro_fields == set(SystemEvent.model_fields) | {"event_type_namespace"}


def test_content_type_names_the_format_but_not_the_schema_version() -> None:
    assert CONTENT_TYPE.startswith("application/avro")
    assert SYSTEM_EVENT_FINGERPRINT.hex() not in CONTENT_TYPE


def test_package_exports_every_public_name() -> None:
    for name in schemas.__all__:
        assert getattr(schemas, name) is not None
    public = {n for m in (schemas.avro, schemas.codec) for n in m.__all__}
    assert public <= set(schemas.__all__)


# --- lossless round trips ---


def test_typical_event_round_trips_every_field() -> None:
    event = typical_event(error_message="boom", error_type="RuntimeError")
    decoded = decode_event(encode_event(event))
    assert decoded.model_dump() == event.model_dump()
    assert decoded.event_type is EventType.AGENT_COMPLETED
    assert isinstance(decoded.event_id, UUID)


def test_event_with_only_required_fields_round_trips_nulls() -> None:
    event = SystemEvent(event_type=EventType.AGENT_STARTED, agent_id="a")
    decoded = decode_event(encode_event(event))
    assert decoded == event
    assert decoded.user_id is None
    assert decoded.execution_time_ms is None


def test_timestamp_keeps_microseconds_and_stays_utc_aware() -> None:
    local = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=8)))
    decoded = decode_event(encode_event(typical_event(timestamp=local)))
    assert decoded.timestamp == local
    assert decoded.timestamp.utcoffset() == timedelta(0)
    assert decoded.timestamp.microsecond == 678901


def test_timestamp_before_epoch_round_trips() -> None:
    old = datetime(1901, 12, 13, 20, 45, 52, 1, tzinfo=UTC)
    assert decode_event(encode_event(typical_event(timestamp=old))).timestamp == old


def test_metadata_keeps_big_ints_nested_values_and_unicode() -> None:
    metadata = {
        "big": 2**200,
        "negative": -(2**70),
        "nested": {"list": [1, [2, {"deep": None}], "三"], "empty": {}, "flag": False},
        "float": 0.1,
        "emoji": "🙂 naïve 中文",
    }
    decoded = decode_event(encode_event(typical_event(metadata=metadata)))
    assert decoded.metadata == metadata
    assert decoded.metadata["big"] == 2**200


def test_metadata_travels_as_compact_json_text() -> None:
    record = EventCodec.to_record(typical_event(metadata={"a": [1, 2], "b": "中"}))
    assert record["metadata"] == '{"a":[1,2],"b":"中"}'


def test_registered_custom_enum_resolves_to_its_member() -> None:
    decoded = decode_event(encode_event(typical_event(event_type=Mood.GRUMPY)))
    assert decoded.event_type is Mood.GRUMPY


def test_custom_enum_travels_with_its_namespace() -> None:
    record = EventCodec.to_record(typical_event(event_type=Mood.HAPPY))
    assert (record["event_type_namespace"], record["event_type"]) == ("tests.codec.mood", "happy")
    assert EventCodec.to_record(typical_event())["event_type_namespace"] == ""


def test_unregistered_namespace_decodes_to_foreign_type_with_same_value() -> None:
    data = crafted(event_type_namespace="someone.elses.enum", event_type="reticulated")
    decoded = decode_event(data)
    assert decoded.event_type == ForeignEventType("someone.elses.enum", "reticulated")
    assert decoded.event_type.value == "reticulated"


def test_foreign_event_type_is_forwarded_unchanged() -> None:
    foreign = ForeignEventType("someone.elses.enum", "reticulated")
    decoded = decode_event(encode_event(typical_event(event_type=foreign)))
    assert decoded.event_type == foreign


def test_unknown_value_of_a_known_namespace_decodes_to_foreign_type() -> None:
    decoded = decode_event(crafted(event_type_namespace="tests.codec.mood", event_type="sleepy"))
    assert decoded.event_type == ForeignEventType("tests.codec.mood", "sleepy")


# --- decode errors ---


def test_unknown_fingerprint_raises_unknown_schema_error() -> None:
    data = encode_event(typical_event())
    with pytest.raises(UnknownSchemaError, match="not known"):
        decode_event(data[:2] + b"\x00" * 8 + data[10:])


def test_wrong_magic_raises_malformed() -> None:
    data = encode_event(typical_event())
    with pytest.raises(MalformedEventError, match="c301"):
        decode_event(b"\x00\x01" + data[2:])


@pytest.mark.parametrize("cut", [0, 1, 5, 9, 10, 11, 40, -1])
def test_truncated_value_raises_malformed(cut: int) -> None:
    data = encode_event(typical_event())
    with pytest.raises(MalformedEventError):
        decode_event(data[:cut])


def test_trailing_bytes_after_body_raise_malformed() -> None:
    with pytest.raises(MalformedEventError, match="trailing"):
        decode_event(encode_event(typical_event()) + b"\x00")


def test_json_text_instead_of_avro_raises_malformed() -> None:
    with pytest.raises(MalformedEventError):
        decode_event(typical_event().model_dump_json().encode())


def test_garbage_after_valid_header_raises_malformed() -> None:
    with pytest.raises(MalformedEventError):
        decode_event(SINGLE_OBJECT_MAGIC + SYSTEM_EVENT_FINGERPRINT + b"\xff" * 30)


@pytest.mark.parametrize("metadata", ["{not json", "[1, 2]", '{"a": NaN}', '{"a": 1e999}', ""])
def test_metadata_that_is_not_a_json_object_raises_malformed(metadata: str) -> None:
    with pytest.raises(MalformedEventError, match="metadata"):
        decode_event(crafted(metadata=metadata))


def test_invalid_uuid_raises_malformed() -> None:
    with pytest.raises(MalformedEventError, match="UUID"):
        decode_event(crafted(event_id="not-a-uuid"))


def test_any_wildcard_as_event_type_raises_malformed() -> None:
    with pytest.raises(MalformedEventError, match="wildcard"):
        decode_event(crafted(event_type="*"))


def test_decode_errors_are_decode_errors() -> None:
    assert issubclass(MalformedEventError, DecodeError)
    assert issubclass(UnknownSchemaError, DecodeError)


# --- encode errors ---


def test_nan_in_metadata_raises_encode_error() -> None:
    with pytest.raises(EncodeError, match="NaN"):
        encode_event(typical_event(metadata={"score": float("nan")}))


def test_execution_time_beyond_avro_long_raises_encode_error() -> None:
    with pytest.raises(EncodeError, match="execution_time_ms"):
        encode_event(typical_event(execution_time_ms=2**63))


def test_lone_surrogate_in_a_string_raises_encode_error() -> None:
    with pytest.raises(EncodeError, match="surrogates"):
        encode_event(typical_event(agent_id="bad\ud800"))


def test_any_wildcard_event_raises_encode_error() -> None:
    event = SystemEvent.model_construct(**{**typical_event().__dict__, "event_type": EventType.ANY})
    with pytest.raises(EncodeError, match="wildcard"):
        encode_event(event)


@pytest.mark.parametrize(("canonical", "expected"), AVRO_VECTORS)
def test_messages_show_the_fingerprint_as_java_prints_it(canonical: str, expected: int) -> None:
    text = fingerprint_text(bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO")))
    assert f"Java long {expected})" in text
    assert text.startswith(f"{expected % 2**64:#018x}")


def test_unknown_schema_error_names_the_java_fingerprint() -> None:
    schema = {"type": "record", "name": "foo", "fields": [{"name": "f1", "type": "boolean"}]}
    framed = SINGLE_OBJECT_MAGIC + schema_fingerprint(schema) + b"\x01"
    with pytest.raises(UnknownSchemaError, match="Java long 7843277075252814651"):
        EventCodec().decode(framed)
