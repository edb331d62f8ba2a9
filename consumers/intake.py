"""What every consumer-group member does with a fetched record before handling it.

Both runtimes (:class:`~consumers.runtime.ConsumerService` and the window
processor) take each record through :func:`admit`, so the two guarantees below
live here once and no runtime can miss them:

1. **Re-drive address.** A record re-driven from the DLQ names the group that
   failed it (``__agent_events.redrive.for.group``); every other group handled it
   the first time and skips it, so nothing is counted or handled twice.
2. **Decode -> DLQ.** A record that cannot be decoded (a tombstone, an empty
   value, garbage, an unknown schema) becomes a :class:`DeadLetter` at stage
   ``decode`` at once: retrying cannot fix bytes, and the partition moves on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from agent_events.agent_runtime.errors import DecodeError, MalformedEventError
from agent_events.agent_runtime.events import SystemEvent
from agent_events.consumers.dlq import REDRIVE_COUNT_HEADER, REDRIVE_FOR_GROUP_HEADER, DeadLetter
from agent_events.producers.headers import header_value
from agent_events.schemas.codec import EventCodec

__all__ = ["Admission", "Skip", "admit", "is_redrive"]

Record: TypeAlias = Any  # an aiokafka ConsumerRecord (aiokafka ships no type information)


@dataclass(frozen=True, slots=True)
class Skip:
    """The record is a re-drive addressed to another group: not this member's work."""

    for_group: str


Admission: TypeAlias = SystemEvent | DeadLetter | Skip
"""What :func:`admit` decided: handle the event, dead-letter the record, or skip it."""


def is_redrive(headers: Sequence[tuple[str, bytes]] | None) -> bool:
    """Whether the record was sent back from the DLQ (it carries a re-drive count)."""
    return header_value(headers or (), REDRIVE_COUNT_HEADER) is not None


def admit(record: Record, codec: EventCodec, *, group_id: str, handler: str | None) -> Admission:
    """Steps 1 and 2 of the module docstring for one record.

    ``handler`` names what would have handled the record, for the dead letter's
    ``.handler`` header. Never raises for a record's content.
    """
    target = _redrive_target(record.headers)
    if target is not None and target != group_id:
        return Skip(target)
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


def _redrive_target(headers: Sequence[tuple[str, bytes]] | None) -> str | None:
    raw = header_value(headers or (), REDRIVE_FOR_GROUP_HEADER)
    return raw.decode("utf-8", "replace") if raw is not None else None
