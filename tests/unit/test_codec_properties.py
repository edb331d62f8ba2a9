"""Property tests: every SystemEvent round-trips; no input bytes crash or hang decode."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from enum import Enum
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_events.agent_runtime.errors import DecodeError
from agent_events.agent_runtime.events import (
    EventType,
    ForeignEventType,
    SystemEvent,
    register_event_types,
)
from agent_events.schemas import (
    SINGLE_OBJECT_MAGIC,
    SYSTEM_EVENT_FINGERPRINT,
    decode_event,
    encode_event,
)


class Weather(Enum):
    __event_namespace__ = "tests.properties.weather"
    SUNNY = "sunny"
    RAINY = "rainy"
    FOGGY = "brouillard ☁"


class Deploy(Enum):
    __event_namespace__ = "tests.properties.deploy"
    STARTED = "deploy_started"
    ROLLED_BACK = "rolled_back"


register_event_types(Weather)
register_event_types(Deploy)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**300), max_value=2**300)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=25,
)
metadata = st.dictionaries(st.text(), json_values, max_size=6)

foreign_types = st.builds(
    ForeignEventType,
    st.text(min_size=1).map(lambda s: "unregistered." + s),
    st.text(),
)
event_types = (
    st.sampled_from([t for t in EventType if t is not EventType.ANY])
    | st.sampled_from(list(Weather))
    | st.sampled_from(list(Deploy))
    | foreign_types
)

offsets = st.integers(min_value=-23 * 60, max_value=23 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
timestamps = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets
)
avro_longs = st.integers(min_value=-(2**63), max_value=2**63 - 1)

events = st.builds(
    SystemEvent,
    event_type=event_types,
    agent_id=st.text(),
    user_id=st.none() | st.text(),
    session_id=st.none() | st.text(),
    timestamp=timestamps,
    metadata=metadata,
    execution_time_ms=st.none() | avro_longs,
    error_message=st.none() | st.text(),
    error_type=st.none() | st.text(),
    event_id=st.uuids(),
)


@given(events)
def test_every_event_round_trips_unchanged(event: SystemEvent) -> None:
    decoded = decode_event(encode_event(event))
    assert decoded == event
    assert decoded.model_dump() == event.model_dump()


@given(events)
def test_decoded_timestamp_is_utc_with_microseconds(event: SystemEvent) -> None:
    decoded = decode_event(encode_event(event))
    assert decoded.timestamp.utcoffset() == timedelta(0)
    assert (
        decoded.timestamp.astimezone(UTC).microsecond == event.timestamp.astimezone(UTC).microsecond
    )


@given(events)
def test_decoded_custom_types_keep_their_identity(event: SystemEvent) -> None:
    decoded = decode_event(encode_event(event))
    if isinstance(event.event_type, Enum):
        assert decoded.event_type is event.event_type
    else:
        assert isinstance(decoded.event_type, ForeignEventType)
        assert decoded.event_type.value == event.event_type.value


def _decode_or_decode_error(data: bytes) -> None:
    try:
        result: Any = decode_event(data)
    except DecodeError:
        return
    assert isinstance(result, SystemEvent)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_decode_errors(data: bytes) -> None:
    _decode_or_decode_error(data)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_arbitrary_body_after_valid_header_raises_only_decode_errors(body: bytes) -> None:
    _decode_or_decode_error(SINGLE_OBJECT_MAGIC + SYSTEM_EVENT_FINGERPRINT + body)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(events, st.data())
def test_truncated_valid_encoding_raises_malformed(event: SystemEvent, data: st.DataObject) -> None:
    encoded = encode_event(event)
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    try:
        decode_event(encoded[:cut])
    except DecodeError:
        return
    raise AssertionError(f"a value truncated to {cut} of {len(encoded)} bytes decoded")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(events, st.data())
def test_bit_flipped_encoding_raises_only_decode_errors(
    event: SystemEvent, data: st.DataObject
) -> None:
    encoded = bytearray(encode_event(event))
    flips = data.draw(
        st.lists(st.integers(min_value=0, max_value=len(encoded) * 8 - 1), min_size=1, max_size=4)
    )
    for bit in flips:
        encoded[bit // 8] ^= 1 << (bit % 8)
    _decode_or_decode_error(bytes(encoded))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(events, st.data())
def test_spliced_encoding_raises_only_decode_errors(
    event: SystemEvent, data: st.DataObject
) -> None:
    encoded = encode_event(event)
    start = data.draw(st.integers(min_value=0, max_value=len(encoded)))
    end = data.draw(st.integers(min_value=start, max_value=len(encoded)))
    insert = data.draw(st.binary(max_size=12))
    _decode_or_decode_error(encoded[:start] + insert + encoded[end:])


def test_a_decoded_event_is_the_object_pydantic_would_construct() -> None:
    """The codec builds trusted events without pydantic's per-field loop: same object."""
    from agent_events.agent_runtime.events import EventType, SystemEvent
    from agent_events.schemas.codec import decode_event, encode_event

    event = SystemEvent(
        event_type=EventType.ERROR_OCCURRED,
        agent_id="a",
        session_id="s",
        metadata={"nested": {"x": [1, None]}},
        error_type="Timeout",
    )
    decoded = decode_event(encode_event(event))
    constructed = SystemEvent.model_construct(**dict(event))
    assert decoded == event
    assert repr(decoded) == repr(constructed)
    assert decoded.model_fields_set == constructed.model_fields_set
    assert decoded.model_dump_json() == event.model_dump_json()
    assert decoded.model_copy(update={"agent_id": "b"}).agent_id == "b"
