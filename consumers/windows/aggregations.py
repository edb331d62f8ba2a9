"""What a window computes: counts, ``execution_time_ms`` statistics, errors, sessions, reducers.

Every window holds one :class:`WindowState`: the built-in aggregates (always on,
they cost a few additions per event) plus one value per user :class:`Reducer`.
States are plain numbers, a set of session ids and JSON values, so they serialise
to the changelog as JSON and back without loss (:meth:`Aggregations.dump` /
:meth:`Aggregations.load`).

Sliding windows are computed by merging per-timestamp states, and session windows
merge when an event bridges two, so a reducer used with either needs ``merge``;
:class:`Aggregations` refuses one without.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from agent_events.agent_runtime.errors import ConfigError
from agent_events.agent_runtime.events import EventType, SystemEvent, event_time_ms
from agent_events.agent_runtime.subscription import type_label

__all__ = [
    "DEFAULT_KEY_FIELDS",
    "KEY_FIELDS",
    "Aggregations",
    "KeyFunction",
    "Reducer",
    "WindowState",
    "WindowValues",
    "default_window_key",
    "event_time_ms",
    "is_error",
    "key_function",
]

T = TypeVar("T")

_ERROR_TYPES: Final = frozenset({EventType.ERROR_OCCURRED, EventType.MIDDLEWARE_FAILED})

KEY_FIELDS: Final = ("event_type", "agent_id", "user_id", "session_id", "error_type")
"""The event fields a window key may be built from."""

DEFAULT_KEY_FIELDS: Final = ("event_type", "agent_id")
"""The spec's key: one window per event type and agent."""

KeyFunction = Callable[[SystemEvent], str]

_KEY_CACHE_SIZE: Final = 65_536


def is_error(event: SystemEvent) -> bool:
    """An event counts as an error if it carries an error or has an error type."""
    return (
        event.error_type is not None
        or event.error_message is not None
        or event.event_type in _ERROR_TYPES
    )


def _field_text(event: SystemEvent, name: str) -> str | None:
    if name == "event_type":
        return type_label(event.event_type)
    value: str | None = getattr(event, name)
    return value


_KEY_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def default_window_key(type_label: str, agent_id: str) -> str:
    """The key of :data:`DEFAULT_KEY_FIELDS`: ``["<type label>","<agent id>"]``."""
    return _KEY_ENCODER.encode([type_label, agent_id])


def key_function(fields: Sequence[str]) -> KeyFunction:
    """The window key of an event: a JSON array of the chosen fields, e.g. ``["agent_completed","a1"]``.

    JSON keeps the key unambiguous whatever the values contain, and readers in any
    language split it with a JSON parser.
    """
    chosen = tuple(fields)
    unknown = [f for f in chosen if f not in KEY_FIELDS]
    if not chosen or unknown:
        raise ConfigError(
            f"window key fields {list(chosen)} are not all event fields; "
            f"choose from {', '.join(KEY_FIELDS)}"
        )
    encode = _KEY_ENCODER.encode
    if chosen != DEFAULT_KEY_FIELDS:
        return lambda event: encode([_field_text(event, f) for f in chosen])
    # The hot path: few (type, agent) pairs, so their keys are remembered (bounded).
    known: dict[tuple[object, str], str] = {}

    def default_key(event: SystemEvent) -> str:
        pair = (event.event_type, event.agent_id)
        key = known.get(pair)
        if key is None:
            if len(known) >= _KEY_CACHE_SIZE:
                known.clear()
            key = known[pair] = default_window_key(type_label(event.event_type), event.agent_id)
        return key

    return default_key


@dataclass(frozen=True)
class Reducer(Generic[T]):
    """A user-defined aggregate: ``initial()``, then ``add(value, event)`` per event.

    ``value`` must be a JSON value (it is written to the changelog as JSON).
    ``merge(a, b)`` combines two values of disjoint event sets; sliding windows need
    it. Reducers must be deterministic: a restored window replays nothing, it
    continues from the stored value.
    """

    name: str
    initial: Callable[[], T]
    add: Callable[[T, SystemEvent], T]
    merge: Callable[[T, T], T] | None = None


class WindowState:
    """The running aggregates of one window (or of one timestamp, for sliding windows)."""

    __slots__ = (
        "count",
        "custom",
        "errors",
        "sessions",
        "time_max",
        "time_min",
        "time_sum",
        "timed",
    )

    def __init__(self, custom: list[Any]) -> None:
        self.count = 0
        self.timed = 0
        self.time_sum = 0
        self.time_min: int | None = None
        self.time_max: int | None = None
        self.errors = 0
        self.sessions: set[str] = set()
        self.custom = custom


@dataclass(frozen=True, slots=True)
class WindowValues:
    """The aggregates of a window as emitted: the built-ins plus each reducer's value."""

    count: int
    execution_time_count: int
    execution_time_ms_sum: int
    execution_time_ms_min: int | None
    execution_time_ms_max: int | None
    execution_time_ms_mean: float | None
    error_count: int
    error_rate: float
    distinct_sessions: int
    reducers: dict[str, Any]


class Aggregations:
    """The aggregates every window of one processor computes (built-ins + ``reducers``)."""

    def __init__(self, reducers: Iterable[Reducer[Any]] = (), *, need_merge: bool = False) -> None:
        self.reducers = tuple(reducers)
        names = [r.name for r in self.reducers]
        if len(set(names)) != len(names):
            raise ConfigError(f"reducer names must be unique, got {names}")
        if need_merge:
            lacking = [r.name for r in self.reducers if r.merge is None]
            if lacking:
                raise ConfigError(
                    f"reducers {lacking} have no merge(); sliding and session windows "
                    "combine partial values, so give each reducer a merge function"
                )

    def new(self) -> WindowState:
        """An empty state."""
        return WindowState([r.initial() for r in self.reducers])

    def add(self, state: WindowState, event: SystemEvent) -> None:
        """Add one event to ``state``."""
        state.count += 1
        duration = event.execution_time_ms
        if duration is not None:
            state.timed += 1
            state.time_sum += duration
            if state.time_min is None or duration < state.time_min:
                state.time_min = duration
            if state.time_max is None or duration > state.time_max:
                state.time_max = duration
        if is_error(event):
            state.errors += 1
        if event.session_id is not None:
            state.sessions.add(event.session_id)
        if self.reducers:
            custom = state.custom
            for i, reducer in enumerate(self.reducers):
                custom[i] = reducer.add(custom[i], event)

    def merge(self, into: WindowState, other: WindowState) -> None:
        """Fold ``other`` (a disjoint set of events) into ``into``."""
        into.count += other.count
        into.timed += other.timed
        into.time_sum += other.time_sum
        if other.time_min is not None and (into.time_min is None or other.time_min < into.time_min):
            into.time_min = other.time_min
        if other.time_max is not None and (into.time_max is None or other.time_max > into.time_max):
            into.time_max = other.time_max
        into.errors += other.errors
        into.sessions |= other.sessions
        for i, reducer in enumerate(self.reducers):
            assert reducer.merge is not None  # checked in __init__ for sliding windows
            into.custom[i] = reducer.merge(into.custom[i], other.custom[i])

    def values(self, state: WindowState) -> WindowValues:
        """The emitted form of ``state``."""
        count = state.count
        return WindowValues(
            count=count,
            execution_time_count=state.timed,
            execution_time_ms_sum=state.time_sum,
            execution_time_ms_min=state.time_min,
            execution_time_ms_max=state.time_max,
            execution_time_ms_mean=state.time_sum / state.timed if state.timed else None,
            error_count=state.errors,
            error_rate=state.errors / count if count else 0.0,
            distinct_sessions=len(state.sessions),
            reducers={r.name: state.custom[i] for i, r in enumerate(self.reducers)},
        )

    def dump(self, state: WindowState) -> bytes:
        """``state`` as compact JSON for the changelog."""
        return json.dumps(
            [
                state.count,
                state.timed,
                state.time_sum,
                state.time_min,
                state.time_max,
                state.errors,
                sorted(state.sessions),
                {r.name: state.custom[i] for i, r in enumerate(self.reducers)},
            ],
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()

    def load(self, data: bytes) -> WindowState:
        """The state :meth:`dump` wrote; a reducer added since starts from ``initial()``."""
        count, timed, time_sum, time_min, time_max, errors, sessions, custom = json.loads(data)
        state = WindowState(
            [custom[r.name] if r.name in custom else r.initial() for r in self.reducers]
        )
        state.count, state.timed, state.time_sum = count, timed, time_sum
        state.time_min, state.time_max, state.errors = time_min, time_max, errors
        state.sessions = set(sessions)
        return state
