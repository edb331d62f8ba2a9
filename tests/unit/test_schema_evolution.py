"""Old and new producers coexist: writer schemas are resolved against the reader's."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from agent_events.agent_runtime.errors import ConfigError, DecodeError, UnknownSchemaError
from agent_events.agent_runtime.events import EventType, SystemEvent
from agent_events.schemas import (
    SYSTEM_EVENT_FINGERPRINT,
    SYSTEM_EVENT_SCHEMA,
    AvroSchemaStore,
    EventCodec,
    SingleObjectCodec,
    decode_event,
    encode_event,
    schema_fingerprint,
)
from agent_events.schemas.avro import fingerprint_text

V1: dict[str, Any] = SYSTEM_EVENT_SCHEMA

# A later version of the contract: one field added, with a default, as evolution requires.
V2: dict[str, Any] = {
    **copy.deepcopy(V1),
    "fields": [
        *copy.deepcopy(V1["fields"]),
        {
            "name": "tenant",
            "type": ["null", "string"],
            "default": None,
            "doc": "Tenant the agent runs for (added in v2).",
        },
        {"name": "priority", "type": "int", "default": 3, "doc": "Scheduling priority (v2)."},
    ],
}


def event() -> SystemEvent:
    return SystemEvent(
        event_type=EventType.SESSION_CREATED,
        agent_id="agent-1",
        session_id="s-1",
        timestamp=datetime(2024, 5, 17, 9, 30, 1, 123456, tzinfo=UTC),
        metadata={"nested": {"k": [1, 2, 3]}},
    )


def test_versions_have_distinct_fingerprints() -> None:
    assert schema_fingerprint(V2) != SYSTEM_EVENT_FINGERPRINT


def test_v2_reader_fills_defaults_when_reading_v1_writer() -> None:
    v2_reader = SingleObjectCodec(V2, AvroSchemaStore([V1]))
    record = v2_reader.decode(encode_event(event()))
    assert record["tenant"] is None
    assert record["priority"] == 3
    assert record["agent_id"] == "agent-1"
    assert record["timestamp"] == event().timestamp


def test_v1_reader_ignores_field_added_by_v2_writer() -> None:
    original = event()
    record = {**EventCodec.to_record(original), "tenant": "acme", "priority": 9}
    v2_bytes = SingleObjectCodec(V2).encode(record)
    assert v2_bytes[2:10] == schema_fingerprint(V2)

    v1_reader = EventCodec(AvroSchemaStore([V2]))
    decoded = v1_reader.decode(v2_bytes)
    assert decoded == original
    assert decoded.metadata == {"nested": {"k": [1, 2, 3]}}


def test_v1_reader_still_reads_v1_writer_when_v2_is_registered() -> None:
    original = event()
    reader = EventCodec(AvroSchemaStore([V2]))
    assert reader.decode(encode_event(original)) == original


def test_reader_without_v2_registered_rejects_v2_as_unknown_schema() -> None:
    record = {**EventCodec.to_record(event()), "tenant": "acme", "priority": 9}
    with pytest.raises(
        UnknownSchemaError, match=re.escape(fingerprint_text(schema_fingerprint(V2)))
    ):
        decode_event(SingleObjectCodec(V2).encode(record))


def test_v0_writer_without_namespace_field_reads_as_builtin_type() -> None:
    v0 = copy.deepcopy(V1)
    v0["fields"] = [f for f in v0["fields"] if f["name"] != "event_type_namespace"]
    record = EventCodec.to_record(event())
    del record["event_type_namespace"]
    data = SingleObjectCodec(v0).encode(record)

    decoded = EventCodec(AvroSchemaStore([v0])).decode(data)
    assert decoded.event_type is EventType.SESSION_CREATED


def test_incompatible_writer_schema_raises_decode_error() -> None:
    incompatible = copy.deepcopy(V1)
    for field in incompatible["fields"]:
        if field["name"] == "agent_id":
            field["type"] = "long"
    data = SingleObjectCodec(incompatible).encode({**EventCodec.to_record(event()), "agent_id": 7})
    with pytest.raises(DecodeError, match="cannot be resolved"):
        EventCodec(AvroSchemaStore([incompatible])).decode(data)


def test_store_registration_is_idempotent() -> None:
    store = AvroSchemaStore([V1, V2])
    assert store.register(V1) == SYSTEM_EVENT_FINGERPRINT
    assert len(store) == 2
    assert store.fingerprints() == [SYSTEM_EVENT_FINGERPRINT, schema_fingerprint(V2)]


def test_store_lookup_of_unknown_fingerprint_raises_unknown_schema_error() -> None:
    store = AvroSchemaStore([V1])
    assert store.get(b"\x00" * 8) is None
    with pytest.raises(UnknownSchemaError):
        store.parsed(b"\x00" * 8)


def test_schema_given_as_json_text_has_same_fingerprint() -> None:
    assert schema_fingerprint(json.dumps(V2, indent=2)) == schema_fingerprint(V2)


@pytest.mark.parametrize(
    "bad",
    [
        "{",
        '"string"',
        {"type": "record", "name": "R", "fields": [{"name": "a", "type": "nope"}]},
        {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int", "default": "x"}]},
    ],
)
def test_invalid_schema_raises_config_error(bad: Any) -> None:
    with pytest.raises(ConfigError):
        AvroSchemaStore([bad])
