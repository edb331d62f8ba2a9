"""Window state of one partition in memory, its changelog records, and its restore.

A :class:`WindowStore` holds ``(key, start, end) -> WindowState`` for one input
partition, plus the facts the output depends on: the partition's **watermark**, the
**next input offset** the state reflects and, after a repartition, the watermark
each upstream partition last reported. Every change marks its entry dirty;
:meth:`WindowStore.changelog_records` turns the dirty entries into compacted-topic
records (the state as JSON, or a tombstone for a purged window) followed by one
meta record (watermark, next offset). Written in the same Kafka transaction as the
output and the input offsets, the changelog is always exactly the state that
produced the committed output.

:func:`restore_stores` rebuilds stores from their changelog partitions, read with
``read_committed`` (aborted writes of a crashed member are skipped) until the
partition's end. It finishes only after the end offset is reached *and* a fetch
came back empty, because some Kafka-compatible brokers (Tansu) report end offsets
that are too low.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, NamedTuple, TypeAlias

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from agent_events.agent_runtime.errors import KafkaError
from agent_events.consumers.windows.aggregations import Aggregations, WindowState

__all__ = [
    "ALERT_KEY_PREFIX",
    "META_KEY",
    "SOURCE_KEY_PREFIX",
    "EntryKey",
    "RestoreReport",
    "SourceMark",
    "WindowStore",
    "decode_entry_key",
    "encode_entry_key",
    "restore_stores",
    "source_record",
]

EntryKey: TypeAlias = tuple[str, int, int]
"""``(window key, start ms, end ms)``; for sliding windows one timestamp ``(key, t, t + 1)``."""

META_KEY: Final = b"__meta__"
"""Changelog key of a partition's watermark and next input offset (not a JSON array)."""

ALERT_KEY_PREFIX: Final = b"__alert__/"
"""Changelog keys ``__alert__/<window key>``: the end of the key's last alert window."""

SOURCE_KEY_PREFIX: Final = b"__source__/"
"""Changelog keys ``__source__/<topic>:<partition>``: an input partition's watermark and next
offset, written by the task that re-keys it, into the changelog partition of the same number."""


def source_record(source: str, watermark: int | None, next_offset: int) -> tuple[bytes, bytes]:
    """The changelog record of an input partition's watermark and next offset."""
    value = {"watermark": watermark, "next_offset": next_offset}
    return SOURCE_KEY_PREFIX + source.encode(), _ENCODER.encode(value).encode()


_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode_entry_key(entry: EntryKey) -> bytes:
    """The changelog record key of an entry: ``["<key>",start,end]`` as UTF-8 JSON."""
    return _ENCODER.encode(entry).encode()


def decode_entry_key(data: bytes) -> EntryKey:
    """The entry :func:`encode_entry_key` encoded."""
    key, start, end = json.loads(data)
    return (str(key), int(start), int(end))


class SourceMark(NamedTuple):
    """What an upstream partition last reported: its watermark, and whether it is idle."""

    watermark: int | None
    idle: bool


class WindowStore:
    """The window state of one partition, with what changed since the last changelog write."""

    __slots__ = (
        "aggregations",
        "alerted",
        "dirty",
        "dirty_alerts",
        "entries",
        "next_offset",
        "restored_records",
        "sources",
        "upstream",
        "watermark",
    )

    def __init__(self, aggregations: Aggregations) -> None:
        self.aggregations = aggregations
        self.entries: dict[EntryKey, WindowState] = {}
        self.dirty: set[EntryKey] = set()
        self.watermark: int | None = None
        self.next_offset: int | None = None
        self.sources: dict[str, SourceMark] = {}
        """Upstream partition -> its last reported watermark, after a repartition."""
        self.alerted: dict[str, int] = {}
        """Window key -> end of its last threshold alert window (see ``trigger``)."""
        self.dirty_alerts: set[str] = set()
        self.upstream: dict[str, tuple[int | None, int | None]] = {}
        """Input partition -> (watermark, next offset) its re-keying task recorded."""
        self.restored_records = 0

    def __len__(self) -> int:
        return len(self.entries)

    def changelog_records(self, next_offset: int) -> list[tuple[bytes, bytes | None]]:
        """Records that bring the changelog up to date, then the meta record; clears dirty.

        ``next_offset`` is the input offset the state now reflects (committed with it).
        """
        entries, dump = self.entries, self.aggregations.dump
        records: list[tuple[bytes, bytes | None]] = []
        for entry in self.dirty:
            state = entries.get(entry)
            records.append((encode_entry_key(entry), None if state is None else dump(state)))
        self.dirty.clear()
        for key in self.dirty_alerts:
            end = self.alerted.get(key)
            records.append(
                (ALERT_KEY_PREFIX + key.encode(), None if end is None else str(end).encode())
            )
        self.dirty_alerts.clear()
        self.next_offset = next_offset
        meta = {
            "watermark": self.watermark,
            "next_offset": next_offset,
            "sources": {name: [m.watermark, m.idle] for name, m in self.sources.items()},
        }
        records.append((META_KEY, _ENCODER.encode(meta).encode()))
        return records

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one changelog record (restore); later records win, tombstones delete."""
        if key is None:
            return
        if key.startswith(ALERT_KEY_PREFIX):
            name = key[len(ALERT_KEY_PREFIX) :].decode()
            if value is None:
                self.alerted.pop(name, None)
            else:
                self.alerted[name] = int(value)
            return
        if key.startswith(SOURCE_KEY_PREFIX):
            if value is not None:
                meta = json.loads(value)
                name = key[len(SOURCE_KEY_PREFIX) :].decode()
                self.upstream[name] = (meta.get("watermark"), meta.get("next_offset"))
            return
        if key == META_KEY:
            if value is not None:
                meta = json.loads(value)
                self.watermark = meta.get("watermark")
                self.next_offset = meta.get("next_offset")
                self.sources = {
                    name: SourceMark(wm, idle)
                    for name, (wm, idle) in meta.get("sources", {}).items()
                }
            return
        entry = decode_entry_key(key)
        if value is None:
            self.entries.pop(entry, None)
        else:
            self.entries[entry] = self.aggregations.load(value)
        self.restored_records += 1


@dataclass(frozen=True, slots=True)
class RestoreReport:
    """What one restore read: changelog records and the time it took."""

    records: int
    seconds: float


async def restore_stores(
    consumer: AIOKafkaConsumer,
    stores: Mapping[TopicPartition, WindowStore],
    *,
    idle_ms: int = 200,
    deadline_s: float = 300.0,
) -> RestoreReport:
    """Fill ``stores`` (changelog partition -> empty store) from their changelog partitions.

    ``consumer`` is a standalone ``read_committed`` consumer; it is reassigned here.
    Raises :class:`KafkaError` if the changelog cannot be read to its end within
    ``deadline_s``.
    """
    started = time.monotonic()
    tps = list(stores)
    if not tps:
        return RestoreReport(0, 0.0)
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    end = await consumer.end_offsets(tps)
    remaining = set(tps)
    records = 0
    while remaining:
        if time.monotonic() - started > deadline_s:
            raise KafkaError(
                f"restoring {sorted(tp.partition for tp in remaining)} of changelog "
                f"{tps[0].topic} took more than {deadline_s:g}s; check the broker and "
                "the changelog's size (its cleanup.policy must be compact)"
            )
        batch = await consumer.getmany(*remaining, timeout_ms=idle_ms)
        for tp, recs in batch.items():
            store = stores[tp]
            for record in recs:
                store.apply(record.key, record.value)
            records += len(recs)
        for tp in list(remaining):
            if not batch.get(tp) and await consumer.position(tp) >= end[tp]:
                remaining.discard(tp)
    consumer.assign([])
    return RestoreReport(records, time.monotonic() - started)
