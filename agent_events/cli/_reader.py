"""Reading a topic from a kcat-style start offset, live or up to its end: for ``tail`` and
``verify-order``.

Start positions take kcat's ``-o`` forms: ``beginning``, ``end``, an absolute offset ``N``, the
last ``-N`` records of each partition, or ``s@<ms>`` (the first record at or after a timestamp
in epoch milliseconds).

"The end" is the high watermark (read-committed: the last stable offset) the broker reports in
its *fetch* responses, as kcat's ``-e`` does, rather than the answer of ``end_offsets()``: some
Kafka-compatible brokers (Tansu) answer ``ListOffsets`` wrongly after multi-record batches,
while their fetch responses are right. A partition counts as finished once the reader's
position reaches the end as it was when the partition was first fetched, so a bounded read
always ends, even while producers keep writing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import typer
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from agent_events.agent_runtime.errors import BrokerUnavailable
from agent_events.consumers.capabilities import connection_of, detect_capabilities, require
from agent_events.consumers.scan import log_end_offsets
from agent_events.producers.config import KafkaConnectionConfig

__all__ = ["OffsetSpec", "parse_offset", "read_records", "start_offsets"]

OffsetKind = Literal["beginning", "end", "absolute", "last", "timestamp"]

_POLL_MS = 200
_END_WAIT_S = 30.0


@dataclass(frozen=True, slots=True)
class OffsetSpec:
    """Where to start reading each partition (see :func:`parse_offset`)."""

    kind: OffsetKind
    value: int = 0

    def __str__(self) -> str:
        return {
            "beginning": "beginning",
            "end": "end",
            "absolute": str(self.value),
            "last": f"-{self.value}",
            "timestamp": f"s@{self.value}",
        }[self.kind]


def parse_offset(text: str | OffsetSpec) -> OffsetSpec:
    """``beginning|end|N|-N|s@ms`` as an :class:`OffsetSpec`; ``typer.BadParameter`` otherwise."""
    if isinstance(text, OffsetSpec):
        return text
    value = text.strip().lower()
    if value in ("beginning", "earliest", "start"):
        return OffsetSpec("beginning")
    if value in ("end", "latest"):
        return OffsetSpec("end")
    if value.startswith("s@") and value[2:].isdigit():
        return OffsetSpec("timestamp", int(value[2:]))
    if value.startswith("-") and value[1:].isdigit() and int(value[1:]) > 0:
        return OffsetSpec("last", int(value[1:]))
    if value.isdigit():
        return OffsetSpec("absolute", int(value))
    raise typer.BadParameter(
        f"{text!r} is not an offset; use beginning, end, N, -N (last N) or s@<epoch-ms>"
    )


async def start_offsets(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], spec: OffsetSpec, bootstrap: str
) -> dict[TopicPartition, int]:
    """The offset to start each partition at.

    An absolute offset is clamped into the partition's range. A timestamp needs exact
    ``offsets_for_times``: on a broker without it this raises ``UnsupportedByBroker`` rather
    than silently starting elsewhere. The broker's features are read from what it reports,
    over the consumer's own connection (``bootstrap`` only for a consumer made elsewhere).
    """
    begin = await consumer.beginning_offsets(tps)
    if spec.kind == "beginning":
        return dict(begin)
    if spec.kind == "timestamp":
        connection = connection_of(consumer) or KafkaConnectionConfig(bootstrap_servers=bootstrap)
        caps = await detect_capabilities(connection)
        require(caps, "offsets_for_times", operation="--offset s@<ms>")
        found = await consumer.offsets_for_times(dict.fromkeys(tps, spec.value))
        end = await log_end_offsets(consumer, tps)
        return {tp: (found[tp].offset if found.get(tp) else end[tp]) for tp in tps}
    end = await log_end_offsets(consumer, tps)
    if spec.kind == "end":
        return dict(end)
    if spec.kind == "last":
        return {tp: max(begin[tp], end[tp] - spec.value) for tp in tps}
    return {tp: min(max(begin[tp], spec.value), end[tp]) for tp in tps}


def _end_of(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    stable: int | None = consumer.last_stable_offset(tp)
    if stable is not None and stable >= 0:
        return stable
    highwater: int | None = consumer.highwater(tp)
    return highwater


def _records_before_end(
    batch: dict[TopicPartition, list[Any]], ends: dict[TopicPartition, int]
) -> Iterator[Any]:
    for tp, records in batch.items():
        end = ends.get(tp)
        for record in records:
            if end is not None and record.offset >= end:
                break
            yield record


async def _drop_finished(
    consumer: AIOKafkaConsumer, remaining: set[TopicPartition], ends: dict[TopicPartition, int]
) -> None:
    """Pause and drop from ``remaining`` every partition whose position reached its end."""
    for tp in list(remaining):
        if tp not in ends:
            seen = _end_of(consumer, tp)
            if seen is None:
                continue
            ends[tp] = seen
        if await consumer.position(tp) >= ends[tp]:
            remaining.discard(tp)
            consumer.pause(tp)


async def read_records(
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    start: dict[TopicPartition, int],
    *,
    until_end: bool,
    stop: asyncio.Event | None = None,
) -> AsyncIterator[Any]:
    """Yield records of ``tps`` from ``start``; each partition's records in offset order.

    With ``until_end`` the read ends once every partition reached the end it had when first
    fetched (kcat ``-e``); otherwise it follows new records until ``stop`` is set.
    Raises BrokerUnavailable if a partition reports no end within 30 s (``until_end``).
    """
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, start[tp])
    ends: dict[TopicPartition, int] = {}
    remaining = set(tps)
    first_poll = time.monotonic()
    while not (stop is not None and stop.is_set()):
        if until_end and not remaining:
            return
        batch = await consumer.getmany(timeout_ms=_POLL_MS)
        for record in _records_before_end(batch, ends):
            yield record
        if not until_end:
            continue
        await _drop_finished(consumer, remaining, ends)
        if remaining and not ends and time.monotonic() - first_poll > _END_WAIT_S:
            raise BrokerUnavailable(
                f"the broker reported no end offset for {sorted(str(tp) for tp in remaining)} "
                f"within {_END_WAIT_S:g} s; check that it serves the topic"
            )
