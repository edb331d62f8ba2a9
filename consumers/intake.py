"""What every consumer-group member does with a fetched record before handling it.

Both runtimes (:class:`~consumers.runtime.ConsumerService` and the window
processor) take each record through :func:`admit`, so the guarantees below
live here once and no runtime can miss them. One pass over the headers serves
steps 0 and 1:

0. **Unwanted types.** A runtime that knows which event types it handles passes
   ``wants``; a record whose ``event_type`` header names another type is
   :data:`UNWANTED` and is never decoded (a service that counts completions
   decodes no other event).
1. **Re-drive address.** A record re-driven from the DLQ names the group that
   failed it (``__agent_events.redrive.for.group``); every other group handled it
   the first time and skips it, so nothing is counted or handled twice.
2. **Decode -> DLQ.** A record that cannot be decoded (a tombstone, an empty
   value, garbage, an unknown schema) becomes a :class:`DeadLetter` at stage
   ``decode`` at once: retrying cannot fix bytes, and the partition moves on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias, overload

from agent_events.agent_runtime.errors import DecodeError, MalformedEventError
from agent_events.agent_runtime.events import SystemEvent
from agent_events.consumers.dlq import REDRIVE_COUNT_HEADER, REDRIVE_FOR_GROUP_HEADER, DeadLetter
from agent_events.producers.headers import EVENT_TYPE_HEADER, header_value
from agent_events.schemas.codec import EventCodec

__all__ = ["UNWANTED", "Admission", "Skip", "Unwanted", "admit", "is_redrive"]

Record: TypeAlias = Any  # an aiokafka ConsumerRecord (aiokafka ships no type information)


@dataclass(frozen=True, slots=True)
class Skip:
    """The record is a re-drive addressed to another group: not this member's work."""

    for_group: str


@dataclass(frozen=True, slots=True)
class Unwanted:
    """The record's ``event_type`` header names a type the runtime does not handle."""


UNWANTED: Final = Unwanted()

Admission: TypeAlias = SystemEvent | DeadLetter | Skip | Unwanted
"""What :func:`admit` decided: handle the event, dead-letter the record, or skip it."""


def is_redrive(headers: Sequence[tuple[str, bytes]] | None) -> bool:
    """Whether the record was sent back from the DLQ (it carries a re-drive count)."""
    return header_value(headers or (), REDRIVE_COUNT_HEADER) is not None


@overload
def admit(
    record: Record, codec: EventCodec, *, group_id: str, handler: str | None, wants: None = None
) -> SystemEvent | DeadLetter | Skip: ...


@overload
def admit(
    record: Record,
    codec: EventCodec,
    *,
    group_id: str,
    handler: str | None,
    wants: Callable[[str], bool],
) -> Admission: ...


def admit(
    record: Record,
    codec: EventCodec,
    *,
    group_id: str,
    handler: str | None,
    wants: Callable[[str], bool] | None = None,
) -> Admission:
    """Steps 0 to 2 of the module docstring for one record.

    ``handler`` names what would have handled the record, for the dead letter's
    ``.handler`` header; ``wants`` tells whether an event type label is handled
    (``None``: every type is). Never raises for a record's content.
    """
    label: bytes | None = None
    target: bytes | None = None
    for name, value in record.headers or ():  # one pass for steps 0 and 1
        if name == EVENT_TYPE_HEADER:
            label = value
        elif name == REDRIVE_FOR_GROUP_HEADER:
            target = value
    if label is not None and wants is not None and not wants(label.decode("utf-8", "replace")):
        return UNWANTED
    if target is not None:
        for_group = target.decode("utf-8", "replace")
        if for_group != group_id:
            return Skip(for_group)
    try:
        if record.value is None:
            raise MalformedEventError(
                "the record has no value (a tombstone); events are never null"
            )
        return codec.decode(record.value)
    except DecodeError as exc:
        return DeadLetter.of(
            record, stage="decode", error=exc, consumer_group=group_id, handler=handler
        )
