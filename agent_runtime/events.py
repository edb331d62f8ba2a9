"""The event model: :class:`EventType`, :class:`SystemEvent` and custom event types.

An event type is a member of :class:`EventType` or of any user ``Enum``. Across
processes a type travels as ``(namespace, value)``: the namespace is empty for
:class:`EventType` and the enum's name (or its ``__event_namespace__``) for a custom
enum. A reader that has registered the enum gets its member back; a reader that has
not still receives the event, typed as a :class:`ForeignEventType` with the same
``value``, so no event is ever dropped for an unknown type.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any, Final, TypeAlias
from uuid import UUID, uuid4

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    PlainSerializer,
    field_validator,
)

from agent_events.agent_runtime.errors import InvalidEventError

__all__ = [
    "BUILTIN_NAMESPACE",
    "EventType",
    "EventTypeLike",
    "ForeignEventType",
    "SystemEvent",
    "event_as_json",
    "event_from_json",
    "event_time_ms",
    "event_to_json",
    "event_type_key",
    "register_event_types",
    "resolve_event_type",
]

BUILTIN_NAMESPACE: Final = ""
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class EventType(Enum):
    """The lifecycle events of the agent runtime, plus the ``ANY`` wildcard.

    ``ANY`` is only a subscription wildcard: publishing an event of type ``ANY`` is
    an error.
    """

    # agent lifecycle
    AGENT_STARTED = "agent_started"
    AGENT_COMPLETED = "agent_completed"
    ERROR_OCCURRED = "error_occurred"
    # sessions
    SESSION_CREATED = "session_created"
    SESSION_EXPIRED = "session_expired"
    CHECKPOINT_SAVED = "checkpoint_saved"
    CHECKPOINT_RESTORED = "checkpoint_restored"
    # middleware
    MIDDLEWARE_EXECUTED = "middleware_executed"
    MIDDLEWARE_FAILED = "middleware_failed"
    # user-defined payloads that need no enum of their own
    CUSTOM = "custom"
    # subscription wildcard
    ANY = "*"


class ForeignEventType:
    """An event type whose enum this process has not registered.

    It behaves like an enum member for the things handlers do with a type:
    ``.value``, ``.name``, equality and hashing.
    """

    __slots__ = ("_hash", "name", "namespace", "value")

    def __init__(self, namespace: str, value: str) -> None:
        self.namespace = namespace
        self.value = value
        self.name = value.upper()
        self._hash = hash((namespace, value))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ForeignEventType)
            and other.namespace == self.namespace
            and other.value == self.value
        )

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"ForeignEventType({self.namespace!r}, {self.value!r})"


EventTypeLike: TypeAlias = Enum | ForeignEventType

_registry_lock = threading.Lock()
_enums_by_namespace: dict[str, type[Enum]] = {BUILTIN_NAMESPACE: EventType}
_namespace_by_enum: dict[type[Enum], str] = {EventType: BUILTIN_NAMESPACE}


def _namespace_of(enum_cls: type[Enum]) -> str:
    return str(getattr(enum_cls, "__event_namespace__", enum_cls.__name__))


def register_event_types(enum_cls: type[Enum], namespace: str | None = None) -> str:
    """Make a custom event enum known to this process; returns its namespace.

    Subscribing to a member, or building an event with one, registers its enum by
    itself; call this in a consumer that only receives such events. Two different
    enums may not share a namespace, since readers could not tell them apart.
    """
    existing = _namespace_by_enum.get(enum_cls)
    if existing is not None:
        return existing
    if not (isinstance(enum_cls, type) and issubclass(enum_cls, Enum)):
        raise InvalidEventError(f"event types must be Enum classes, got {enum_cls!r}")
    name = namespace if namespace is not None else _namespace_of(enum_cls)
    if not name:
        raise InvalidEventError("a custom event type namespace must not be empty")
    with _registry_lock:
        other = _enums_by_namespace.get(name)
        if other is not None and other is not enum_cls:
            raise InvalidEventError(
                f"event type namespace {name!r} is taken by {other.__module__}.{other.__qualname__}; "
                f"set __event_namespace__ on {enum_cls.__qualname__} to a unique name"
            )
        _enums_by_namespace[name] = enum_cls
        _namespace_by_enum[enum_cls] = name
    return name


def event_type_key(event_type: EventTypeLike) -> tuple[str, str]:
    """The ``(namespace, value)`` pair an event type travels as."""
    if isinstance(event_type, ForeignEventType):
        return event_type.namespace, event_type.value
    namespace = _namespace_by_enum.get(type(event_type))
    if namespace is None:
        namespace = register_event_types(type(event_type))
    return namespace, str(event_type.value)


def resolve_event_type(namespace: str, value: str) -> EventTypeLike:
    """The enum member for ``(namespace, value)``, or a :class:`ForeignEventType`."""
    enum_cls = _enums_by_namespace.get(namespace)
    if enum_cls is not None:
        try:
            return enum_cls(value)
        except ValueError:
            for member in enum_cls:  # enums with non-string values travel as str(value)
                if str(member.value) == value:
                    return member
    return ForeignEventType(namespace, value)


def _coerce_event_type(value: Any) -> EventTypeLike:
    if isinstance(value, Enum):
        if value is EventType.ANY:
            raise ValueError(
                "EventType.ANY is a subscription wildcard and cannot be an event's type"
            )
        if type(value) is not EventType:
            event_type_key(value)
        return value
    if isinstance(value, ForeignEventType):
        return value
    if isinstance(value, str):
        namespace, sep, name = value.rpartition(":")
        resolved = resolve_event_type(namespace if sep else BUILTIN_NAMESPACE, name)
        if resolved is EventType.ANY:
            raise ValueError(
                "EventType.ANY is a subscription wildcard and cannot be an event's type"
            )
        return resolved
    raise ValueError(f"event_type must be an Enum member or a type string, got {value!r}")


def _serialize_event_type(value: EventTypeLike) -> str:
    namespace, name = event_type_key(value)
    return f"{namespace}:{name}" if namespace else name


def _coerce_timestamp(value: Any) -> Any:
    if isinstance(value, datetime):
        # A naive datetime (the seed's ``datetime.now()``) is local wall time.
        return value.astimezone(UTC)
    return value


def _now_utc() -> datetime:
    return datetime.now(UTC)


EventTypeField = Annotated[
    Any,
    BeforeValidator(_coerce_event_type),
    PlainSerializer(_serialize_event_type, return_type=str),
]


class SystemEvent(BaseModel):
    """One thing that happened in an agent runtime.

    Events are keyed by ``session_id`` on Kafka (``agent_id`` when there is no
    session), so all events of a session stay in order. ``timestamp`` is always
    timezone-aware UTC; a naive datetime is read as local time. ``metadata`` is a
    JSON object and round-trips losslessly through the Avro codec.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    event_type: EventTypeField
    agent_id: str
    user_id: str | None = None
    session_id: str | None = None
    timestamp: Annotated[datetime, BeforeValidator(_coerce_timestamp)] = Field(
        default_factory=_now_utc
    )
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    execution_time_ms: int | None = None
    error_message: str | None = None
    error_type: str | None = None
    event_id: UUID = Field(default_factory=uuid4, validation_alias=AliasChoices("event_id", "id"))

    @field_validator("timestamp")
    @classmethod
    def _require_aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.astimezone(UTC)
        return value

    @property
    def id(self) -> UUID:
        """Alias of :attr:`event_id`, as the seed's idempotency example uses it."""
        return self.event_id

    @property
    def partition_key(self) -> str:
        """The Kafka record key: ``session_id``, or ``agent_id`` without a session."""
        return self.session_id if self.session_id is not None else self.agent_id


def event_as_json(event: SystemEvent) -> dict[str, Any]:
    """The event as JSON values (``json.dumps`` writes it), for stores, files and terminals.

    ``metadata`` is passed through as it is, not serialised by pydantic: pydantic stops at
    about 255 levels of nesting, while the codec accepts what any producer wrote (up to
    Python's recursion limit), so an event that decoded can always be written out.
    """
    body: dict[str, Any] = event.model_dump(mode="json", exclude={"metadata"})
    body["metadata"] = event.metadata
    return body


def event_to_json(event: SystemEvent) -> str:
    """The event as one compact line of JSON (see :func:`event_as_json`)."""
    return json.dumps(event_as_json(event), ensure_ascii=False, separators=(",", ":"))


def event_from_json(text: str | bytes) -> SystemEvent:
    """The event :func:`event_to_json` wrote; raises :class:`InvalidEventError`."""
    try:
        body = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidEventError(f"not a JSON event: {exc}") from exc
    if type(body) is not dict or type(body.get("metadata", {})) is not dict:
        raise InvalidEventError("a JSON event is an object whose metadata is an object")
    metadata = body.pop("metadata", {})
    try:
        event = SystemEvent.model_validate(body)
    except ValueError as exc:
        raise InvalidEventError(f"not a valid event: {exc}") from exc
    # json.loads gave JSON values already; validating them again would hit pydantic's depth.
    return event.model_copy(update={"metadata": metadata})


def event_time_ms(event: SystemEvent) -> int:
    """The event's timestamp in whole milliseconds since the epoch (floored, exact).

    The producer stamps records with it and windows assign events by it, so both agree
    to the millisecond (``timestamp() * 1000`` in floating point can be one off).
    """
    delta = event.timestamp - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000 + delta.microseconds // 1_000
