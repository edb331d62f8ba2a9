"""Every runtime takes records through one intake: re-drive address, decode -> DLQ.

The handler services' :class:`RecordProcessor` and the window processor's partition
tasks both call :func:`consumers.intake.admit`; these tests pin what it decides and
that a window task follows it (no broker: the tasks only accumulate records to write).
"""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition

from agent_events.agent_runtime.errors import MalformedEventError
from agent_events.agent_runtime.events import EventType, SystemEvent
from agent_events.consumers.dlq import REDRIVE_FOR_GROUP_HEADER, DeadLetter, error_headers_of
from agent_events.consumers.intake import Skip, admit, is_redrive
from agent_events.consumers.windows.aggregations import Aggregations, key_function
from agent_events.consumers.windows.codec import WindowAggregateCodec
from agent_events.consumers.windows.config import WindowedAggregationConfig
from agent_events.consumers.windows.engine import WindowEngine
from agent_events.consumers.windows.state import WindowStore
from agent_events.consumers.windows.tasks import AggregateTask
from agent_events.schemas.codec import EventCodec, encode_event


def record(
    value: bytes | None, offset: int = 0, headers: list[tuple[str, bytes]] | None = None
) -> Any:
    return ConsumerRecord(
        topic="events",
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"s",
        value=value,
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=len(value or b""),
        headers=tuple(headers or ()),
    )


GOOD = encode_event(SystemEvent(event_type=EventType.AGENT_STARTED, agent_id="a", session_id="s"))


@pytest.mark.parametrize(
    "value", [None, b"", b"\x00\x01 garbage"], ids=["tombstone", "empty", "garbage"]
)
def test_undecodable_values_become_decode_stage_dead_letters(value: bytes | None) -> None:
    letter = admit(record(value, offset=7), EventCodec(), group_id="g", handler="h")
    assert isinstance(letter, DeadLetter)
    assert (letter.stage, letter.offset, letter.consumer_group, letter.handler) == (
        "decode", 7, "g", "h"
    )  # fmt: skip
    assert isinstance(letter.error, MalformedEventError)
    assert letter.value == value


def test_a_redrive_for_another_group_is_skipped_before_decoding() -> None:
    redriven = record(b"garbage", headers=[(REDRIVE_FOR_GROUP_HEADER, b"other")])
    assert admit(redriven, EventCodec(), group_id="g", handler=None) == Skip("other")
    own = record(GOOD, headers=[(REDRIVE_FOR_GROUP_HEADER, b"g")])
    assert isinstance(admit(own, EventCodec(), group_id="g", handler=None), SystemEvent)


def test_a_record_with_a_redrive_count_is_a_redrive() -> None:
    assert is_redrive([("__agent_events.redrive.count", b"1")])
    assert not is_redrive([("event_type", b"x")])
    assert not is_redrive(None)


def aggregate_task(**settings: Any) -> AggregateTask:
    config = WindowedAggregationConfig(
        group_id="windows", window="tumbling:60s", dlq_topic="events.dlq", **settings
    )
    aggregations = Aggregations()
    engine = WindowEngine(
        config.definition,
        aggregations,
        WindowStore(aggregations),
        key_of=key_function(config.key_fields),
    )
    return AggregateTask(
        TopicPartition("events", 0),
        0,
        config,
        EventCodec(),
        key_function(config.key_fields),
        engine,
        WindowAggregateCodec(),
    )


def test_a_window_task_dead_letters_a_tombstone_and_counts_the_good_records_around_it() -> None:
    task = aggregate_task()
    task.process([record(GOOD, 0), record(None, 1), record(GOOD, 2)])
    assert (task.counters.processed, task.counters.dead_lettered, task.next_offset) == (2, 1, 3)
    [letter] = task.outgoing
    assert (letter.topic, letter.value) == ("events.dlq", None)
    errors = error_headers_of(letter.headers)
    assert (errors["stage"], errors["offset"], errors["consumer.group"]) == (
        "decode",
        "1",
        "windows",
    )


def test_a_window_task_skips_a_redrive_for_another_group() -> None:
    task = aggregate_task()
    redriven = [(REDRIVE_FOR_GROUP_HEADER, b"notifications")]
    task.process([record(GOOD, 0), record(GOOD, 1, redriven), record(b"junk", 2, redriven)])
    assert (task.counters.processed, task.counters.dead_lettered) == (1, 0)
    assert task.counters.skipped_redrives == 2
    assert (task.next_offset, task.outgoing) == (3, [])
