"""What a replay reads: where it starts, where it stops, and which records it keeps.

These are small validated values (no broker needed), built by the CLI from its flags or by
code directly; :func:`consumers.replay.plan_replay` turns one into offsets per partition
against a broker. Every check that needs no broker is made here, so a mistake is reported
before anything connects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from agent_events.agent_runtime.errors import ConfigError

__all__ = [
    "FromBeginning",
    "FromOffsets",
    "FromShift",
    "FromTime",
    "ReplaySpec",
    "StartAt",
    "StopAt",
    "UntilEnd",
    "UntilOffsets",
    "UntilTime",
    "epoch_ms",
    "parse_moment",
    "parse_offsets",
]


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime (Kafka's record timestamp unit)."""
    if moment.tzinfo is None:
        raise ConfigError(f"{moment.isoformat()} has no timezone; give one (e.g. +00:00 or Z)")
    return int(moment.timestamp() * 1000)


def parse_offsets(values: list[str], flag: str) -> int | dict[int, int]:
    """Offsets as text: ``["100"]`` -> 100 (every partition), ``["0:100", "2:7"]`` ->
    ``{0: 100, 2: 7}``; ``flag`` names the option in ConfigError messages."""
    if len(values) == 1 and ":" not in values[0]:
        return _non_negative(values[0], flag, "offset")
    offsets: dict[int, int] = {}
    for value in values:
        part, sep, offset = value.partition(":")
        if not sep:
            raise ConfigError(f"{flag}: give PARTITION:OFFSET for each partition, got {value!r}")
        partition = _non_negative(part, flag, "partition")
        if partition in offsets:
            raise ConfigError(f"{flag}: partition {partition} is given twice")
        offsets[partition] = _non_negative(offset, flag, "offset")
    return offsets


def _non_negative(text: str, flag: str, what: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ConfigError(f"{flag}: {what} {text!r} is not a whole number") from None
    if value < 0:
        raise ConfigError(f"{flag}: {what} must be >= 0, got {value}")
    return value


def parse_moment(text: str, flag: str) -> datetime:
    """An ISO 8601 datetime; without a timezone it is local time (as kafka-consumer-groups)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"{flag}: {text!r} is not an ISO 8601 datetime (e.g. 2026-11-25T14:00:00Z)"
        ) from None
    return moment if moment.tzinfo is not None else moment.astimezone()


def _check_offsets(name: str, offsets: int | Mapping[int, int]) -> None:
    values = [offsets] if isinstance(offsets, int) else list(offsets.values())
    parts = [] if isinstance(offsets, int) else list(offsets)
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{name}: offsets are integers >= 0, got {value!r}")
    for part in parts:
        if isinstance(part, bool) or not isinstance(part, int) or part < 0:
            raise ConfigError(f"{name}: partitions are integers >= 0, got {part!r}")
    if not isinstance(offsets, int) and not offsets:
        raise ConfigError(f"{name}: give at least one partition:offset")


@dataclass(frozen=True, slots=True)
class FromBeginning:
    """Start at the earliest offset still in the log (kcat ``-o beginning``)."""


@dataclass(frozen=True, slots=True)
class FromOffsets:
    """Start at an offset: one for every chosen partition (an ``int``) or one per partition.

    With a mapping and no explicit partition choice, the mapping's partitions are the scope.
    An offset outside the partition's log is an error, not silently clamped.
    """

    offsets: int | Mapping[int, int]

    def __post_init__(self) -> None:
        _check_offsets("start offset", self.offsets)


@dataclass(frozen=True, slots=True)
class FromTime:
    """Start at the first record whose timestamp is at or after ``moment``, in every partition.

    Needs a broker with exact ``offsets_for_times``; a moment in the future is an error.
    """

    moment: datetime

    def __post_init__(self) -> None:
        epoch_ms(self.moment)


@dataclass(frozen=True, slots=True)
class FromShift:
    """Start ``records`` records before the end of each partition (kcat ``-o -N``)."""

    records: int

    def __post_init__(self) -> None:
        if isinstance(self.records, bool) or not isinstance(self.records, int) or self.records < 1:
            raise ConfigError(
                f"a shift reads the last N records of each partition; N must be >= 1, "
                f"got {self.records!r}"
            )


StartAt = FromBeginning | FromOffsets | FromTime | FromShift


@dataclass(frozen=True, slots=True)
class UntilEnd:
    """Stop at each partition's end as it was when the replay started (kcat ``-e``)."""


@dataclass(frozen=True, slots=True)
class UntilOffsets:
    """Stop before an offset (exclusive, like a Python range): one for all, or per partition.

    Partitions in scope without an entry stop at their end.
    """

    offsets: int | Mapping[int, int]

    def __post_init__(self) -> None:
        _check_offsets("stop offset", self.offsets)


@dataclass(frozen=True, slots=True)
class UntilTime:
    """Stop before the first record whose timestamp is at or after ``moment``."""

    moment: datetime

    def __post_init__(self) -> None:
        epoch_ms(self.moment)


StopAt = UntilEnd | UntilOffsets | UntilTime


@dataclass(frozen=True, slots=True)
class ReplaySpec:
    """One replay: a topic, a start, a stop, a scope and filters.

    ``count`` stops after that many delivered events (after filtering), on top of ``stop``.
    ``session_id`` narrows the scope to the one partition its key hashes to (murmur2, as the
    producer partitions) and keeps only records with that key. ``event_types`` (type labels
    such as ``agent_completed``) and ``agent_ids`` keep only matching events.
    """

    topic: str
    start: StartAt = field(default_factory=FromBeginning)
    stop: StopAt = field(default_factory=UntilEnd)
    count: int | None = None
    partitions: tuple[int, ...] | None = None
    session_id: str | None = None
    event_types: frozenset[str] = frozenset()
    agent_ids: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not self.topic or not self.topic.strip():
            raise ConfigError("give the topic to replay (--topic)")
        if self.count is not None and (isinstance(self.count, bool) or self.count < 1):
            raise ConfigError(f"count must be >= 1, got {self.count!r}")
        if self.partitions is not None:
            if not self.partitions:
                raise ConfigError("the partition list is empty; leave it out to read them all")
            if any(p < 0 for p in self.partitions):
                raise ConfigError(f"partitions are >= 0, got {list(self.partitions)}")
            object.__setattr__(self, "partitions", tuple(sorted(set(self.partitions))))
        if self.session_id is not None and not self.session_id:
            raise ConfigError("the session id is empty")
        self._check_start_and_stop()

    def _check_start_and_stop(self) -> None:
        start, stop = self.start, self.stop
        now = datetime.now(UTC)
        if isinstance(start, FromTime) and start.moment > now:
            raise ConfigError(
                f"start time {start.moment.isoformat()} is in the future (now is "
                f"{now.isoformat(timespec='seconds')}); nothing has been written after it yet"
            )
        if (
            isinstance(start, FromTime)
            and isinstance(stop, UntilTime)
            and stop.moment <= start.moment
        ):
            raise ConfigError(
                f"stop time {stop.moment.isoformat()} is not after start time "
                f"{start.moment.isoformat()}"
            )
        if isinstance(start, FromOffsets) and isinstance(stop, UntilOffsets):
            for part, first in _pairs(start.offsets, stop.offsets):
                last = _offset_for(stop.offsets, part)
                if last is not None and last < first:
                    where = "" if part is None else f" on partition {part}"
                    raise ConfigError(f"stop offset {last} is before start offset {first}{where}")
        mapped = [
            set(o.offsets)
            for o in (start, stop)
            if isinstance(o, FromOffsets | UntilOffsets) and not isinstance(o.offsets, int)
        ]
        if self.partitions is not None:
            for parts in mapped:
                outside = sorted(parts - set(self.partitions))
                if outside:
                    raise ConfigError(
                        f"an offset is given for partition {outside[0]}, which is not among "
                        f"the chosen partitions {list(self.partitions)}"
                    )


def _offset_for(offsets: int | Mapping[int, int], partition: int | None) -> int | None:
    if isinstance(offsets, int):
        return offsets
    return None if partition is None else offsets.get(partition)


def _pairs(
    start: int | Mapping[int, int], stop: int | Mapping[int, int]
) -> list[tuple[int | None, int]]:
    if isinstance(start, int):
        if isinstance(stop, int):
            return [(None, start)]
        return [(p, start) for p in stop]
    return list(start.items())
