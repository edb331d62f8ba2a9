"""Window results <-> Avro bytes: the value format of ``agent.events.aggregates``.

The wire form is ``schemas/window_aggregate.avsc`` framed as Avro single-object
encoding by :class:`schemas.avro.SingleObjectCodec`, so a reader in any language
decodes it with the schema and the fingerprint, as for events. Window bounds travel
as ``timestamp-millis``; reducer values as JSON text (their type is the user's).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from agent_events.agent_runtime.errors import EncodeError
from agent_events.consumers.windows.aggregations import WindowValues
from agent_events.schemas.avro import AvroSchemaStore, SingleObjectCodec, load_schema

__all__ = [
    "WINDOW_AGGREGATE_CONTENT_TYPE",
    "WINDOW_AGGREGATE_SCHEMA",
    "AggregateEncoder",
    "WindowAggregate",
    "WindowAggregateCodec",
    "ms_since_epoch",
]

WINDOW_AGGREGATE_SCHEMA: Final[dict[str, Any]] = load_schema("window_aggregate")
"""The current writer (and reader) schema of window results."""

WINDOW_AGGREGATE_CONTENT_TYPE: Final = (
    "application/avro; encoding=single-object; record=agent_events.WindowAggregate"
)
"""The ``content-type`` header of window result records."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_JSON: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class WindowAggregate:
    """One window's result as it travels on the output topic."""

    source: str
    key: str
    key_fields: dict[str, str | None]
    window: str
    start_ms: int
    end_ms: int
    final: bool
    values: WindowValues

    @property
    def identity(self) -> tuple[str, str, int, int]:
        """``(source, key, start, end)``: what identifies a window across emissions."""
        return (self.source, self.key, self.start_ms, self.end_ms)


class AggregateEncoder(Protocol):
    """How a processor writes its window results: bytes, and the ``content-type`` they carry."""

    @property
    def content_type(self) -> str: ...

    def encode(self, aggregate: WindowAggregate) -> bytes: ...


def ms_since_epoch(value: datetime | int) -> int:
    """A ``timestamp-millis`` value as fastavro reads it (a datetime) -> milliseconds."""
    if isinstance(value, int):
        return value
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000 + delta.microseconds // 1_000


class WindowAggregateCodec:
    """Encodes :class:`WindowAggregate` as single-object Avro and decodes it back.

    ``encode`` raises only :class:`EncodeError` (a reducer value that is not JSON);
    ``decode`` only :class:`DecodeError` subclasses, whatever the bytes.
    """

    __slots__ = ("_avro",)

    content_type: Final = WINDOW_AGGREGATE_CONTENT_TYPE

    def __init__(self, store: AvroSchemaStore | None = None) -> None:
        self._avro = SingleObjectCodec(WINDOW_AGGREGATE_SCHEMA, store)

    @property
    def fingerprint(self) -> bytes:
        """The writer schema's fingerprint, as framed."""
        return self._avro.fingerprint

    def encode(self, aggregate: WindowAggregate) -> bytes:
        """The result's single-object Avro bytes."""
        v = aggregate.values
        try:
            reducers = {name: _JSON.encode(value) for name, value in v.reducers.items()}
        except (TypeError, ValueError) as exc:
            raise EncodeError(
                f"a reducer value of window {aggregate.key} is not JSON ({exc}); "
                "reducers must return JSON values"
            ) from exc
        return self._avro.encode(
            {
                "source": aggregate.source,
                "key": aggregate.key,
                "key_fields": aggregate.key_fields,
                "window": aggregate.window,
                "window_start": aggregate.start_ms,
                "window_end": aggregate.end_ms,
                "final": aggregate.final,
                "count": v.count,
                "execution_time_count": v.execution_time_count,
                "execution_time_ms_sum": v.execution_time_ms_sum,
                "execution_time_ms_min": v.execution_time_ms_min,
                "execution_time_ms_max": v.execution_time_ms_max,
                "execution_time_ms_mean": v.execution_time_ms_mean,
                "error_count": v.error_count,
                "error_rate": v.error_rate,
                "distinct_sessions": v.distinct_sessions,
                "reducers": reducers,
            }
        )

    def decode(self, data: bytes) -> WindowAggregate:
        """The result encoded in ``data``."""
        r = self._avro.decode(data)
        return WindowAggregate(
            source=r["source"],
            key=r["key"],
            key_fields=dict(r["key_fields"]),
            window=r["window"],
            start_ms=ms_since_epoch(r["window_start"]),
            end_ms=ms_since_epoch(r["window_end"]),
            final=r["final"],
            values=WindowValues(
                count=r["count"],
                execution_time_count=r["execution_time_count"],
                execution_time_ms_sum=r["execution_time_ms_sum"],
                execution_time_ms_min=r["execution_time_ms_min"],
                execution_time_ms_max=r["execution_time_ms_max"],
                execution_time_ms_mean=r["execution_time_ms_mean"],
                error_count=r["error_count"],
                error_rate=r["error_rate"],
                distinct_sessions=r["distinct_sessions"],
                reducers={name: json.loads(text) for name, text in r["reducers"].items()},
            ),
        )
