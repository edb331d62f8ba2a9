"""The Schema Registry value format without a registry: settings, framing, errors.

Everything that needs the registry's answers is in tests/integration/test_schema_registry.py,
against a real Apicurio Registry; nothing here stands in for one.
"""

from __future__ import annotations

import json
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from agent_events.agent_runtime.errors import (
    ConfigError,
    EncodeError,
    KafkaError,
    MalformedEventError,
    UnknownSchemaError,
)
from agent_events.agent_runtime.event_bus import EventBus, EventType, SystemEvent
from agent_events.consumers.config import ConsumerConfig
from agent_events.consumers.processing import RecordProcessor
from agent_events.producers import KafkaEventProducer
from agent_events.producers.config import ProducerConfig
from agent_events.schemas import (
    CONFLUENT_CONTENT_TYPE,
    CONTENT_TYPE,
    ConfluentEventCodec,
    EventCodec,
    SchemaRegistryClient,
    encode_event,
    make_event_codec,
    schema_text,
)

UNUSED_URL = "http://127.0.0.1:9/apis/ccompat/v7"  # never contacted by these tests


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def event() -> SystemEvent:
    return SystemEvent(event_type=EventType.AGENT_STARTED, agent_id="a", session_id="s")


def test_confluent_format_without_a_registry_url_is_refused_at_load() -> None:
    with pytest.raises(ValidationError, match="needs schema_registry_url"):
        ProducerConfig(value_format="confluent")
    with pytest.raises(ValidationError, match="needs schema_registry_url"):
        ConsumerConfig(group_id="g", value_format="confluent")


def test_a_registry_url_that_is_not_http_is_refused_at_load() -> None:
    with pytest.raises(ValidationError, match="not an http"):
        ProducerConfig(value_format="confluent", schema_registry_url="127.0.0.1:8081")
    with pytest.raises(ConfigError, match="not an http"):
        SchemaRegistryClient("ftp://registry")


def test_single_object_avro_stays_the_default() -> None:
    assert ProducerConfig().value_format == "avro"
    assert ConsumerConfig(group_id="g").value_format == "avro"
    assert type(make_event_codec()) is EventCodec
    assert make_event_codec().content_type == CONTENT_TYPE


def test_the_factory_builds_the_registry_codec_for_confluent() -> None:
    codec = make_event_codec("confluent", UNUSED_URL, topic="t")
    assert isinstance(codec, ConfluentEventCodec)
    assert codec.content_type == CONFLUENT_CONTENT_TYPE
    assert codec.client.url == UNUSED_URL


def test_consumer_processing_takes_its_codec_from_the_value_format() -> None:
    config = ConsumerConfig(
        group_id="g", value_format="confluent", schema_registry_url=UNUSED_URL, dlq_topic=None
    )
    processor = RecordProcessor(EventBus(), config, None)
    assert isinstance(processor._codec, ConfluentEventCodec)


def test_producer_header_names_the_framing_it_writes() -> None:
    producer = KafkaEventProducer(value_format="confluent", schema_registry_url=UNUSED_URL)
    assert (b"content-type", CONFLUENT_CONTENT_TYPE.encode()) in [
        (k.encode(), v) for k, v in producer._static_headers
    ]


async def test_producer_start_with_the_registry_down_fails_with_one_line_naming_it() -> None:
    url = f"http://127.0.0.1:{closed_port()}/apis/ccompat/v7"
    producer = KafkaEventProducer(
        bootstrap_servers="127.0.0.1:9", value_format="confluent", schema_registry_url=url
    )
    with pytest.raises(KafkaError) as caught:
        await producer.start()
    message = str(caught.value)
    assert "\n" not in message
    assert url in message
    assert "unreachable" in message


async def test_lookup_with_the_registry_down_raises_kafka_error_not_decode_error() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    codec = ConfluentEventCodec(SchemaRegistryClient(url))
    with pytest.raises(KafkaError, match="unreachable"):
        await codec.prepare(b"\x00\x00\x00\x00\x07" + b"body")


def test_encoding_for_a_topic_whose_schema_is_not_registered_is_refused() -> None:
    codec = ConfluentEventCodec(SchemaRegistryClient(UNUSED_URL), topic="t")
    with pytest.raises(EncodeError, match="prepare_topic"):
        codec.encode(event())


def test_an_id_not_resolved_yet_is_an_unknown_schema_not_a_crash() -> None:
    codec = ConfluentEventCodec(SchemaRegistryClient(UNUSED_URL))
    with pytest.raises(UnknownSchemaError, match="schema id 7"):
        codec.decode(b"\x00\x00\x00\x00\x07" + encode_event(event())[10:])


@pytest.mark.parametrize("value", [b"\x00", b"\x00\x00\x00\x01"])
def test_a_truncated_registry_header_is_malformed(value: bytes) -> None:
    codec = ConfluentEventCodec(SchemaRegistryClient(UNUSED_URL))
    with pytest.raises(MalformedEventError, match="5-byte"):
        codec.decode(value)


def test_the_registry_codec_reads_single_object_values_too() -> None:
    codec = ConfluentEventCodec(SchemaRegistryClient(UNUSED_URL))
    original = event()
    assert codec.decode(encode_event(original)) == original


def test_the_default_codec_names_the_setting_for_registry_framed_values() -> None:
    with pytest.raises(MalformedEventError, match="value_format='confluent'"):
        EventCodec().decode(b"\x00\x00\x00\x00\x01" + encode_event(event())[10:])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_registry_schema_text_is_the_same_json_without_braces_in_strings(
    schema: dict[str, object],
) -> None:
    text = schema_text(schema)
    assert json.loads(text) == schema
    # Every brace left in the text is an object's own: none is inside a string.
    assert text.count("{") == text.count("}") == count_objects(schema)


def count_objects(value: object) -> int:
    if isinstance(value, dict):
        return 1 + sum(count_objects(v) for v in value.values())
    if isinstance(value, list):
        return sum(count_objects(v) for v in value)
    return 0


def test_settings_carry_the_value_format_into_every_client_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agent_events.settings import load_settings

    monkeypatch.setenv("AGENT_EVENTS_VALUE_FORMAT", "confluent")
    monkeypatch.setenv("AGENT_EVENTS_SCHEMA_REGISTRY_URL", UNUSED_URL)
    settings = load_settings()
    assert settings.producer_config().value_format == "confluent"
    assert settings.consumer_config("g").schema_registry_url == UNUSED_URL
    monkeypatch.delenv("AGENT_EVENTS_SCHEMA_REGISTRY_URL")
    with pytest.raises(ConfigError, match="needs schema_registry_url"):
        load_settings()
