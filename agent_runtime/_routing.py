"""Which subscriptions an event goes to: the bus's subscription table and its fan-out cache.

The fan-out list of each event type is built once and kept until a subscription is
added or removed, so a publish costs one dict lookup (by ``id()`` for enum members,
which are singletons: ``Enum.__hash__`` is Python code, ``id()`` is not).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from enum import Enum

from agent_events.agent_runtime._lanes import Fanout, Lane
from agent_events.agent_runtime.bus_metrics import BusMetrics
from agent_events.agent_runtime.errors import InvalidEventError
from agent_events.agent_runtime.events import EventType, EventTypeLike, SystemEvent

__all__ = ["Routes"]

_ANY = EventType.ANY


class Routes:
    """The subscriptions of one bus (their lanes), by id, and the cached fan-out list per type."""

    def __init__(self, metrics: BusMetrics | None, label: Callable[[EventTypeLike], str]) -> None:
        self._metrics = metrics
        self._label = label
        self._subscriptions: dict[str, Lane] = {}
        self._targets: dict[EventTypeLike, Fanout] = {}
        # Foreign types are never put here (not singletons).
        self._targets_by_id: dict[int, tuple[EventTypeLike, Fanout, str]] = {}
        self._wanted: frozenset[str] | None = None  # labels subscribed to; None: rebuild
        self._wants_any = False

    def __iter__(self) -> Iterator[Lane]:
        return iter(self._subscriptions.values())

    def __len__(self) -> int:
        return len(self._subscriptions)

    def add(self, lane: Lane) -> None:
        self._subscriptions[lane.sub.id] = lane
        self._forget_targets()

    def remove(self, subscription_id: str) -> Lane | None:
        sub = self._subscriptions.pop(subscription_id, None)
        if sub is not None:
            self._forget_targets()
        return sub

    def accept(self, event: SystemEvent) -> Fanout:
        """Validate and count an event; the subscriptions it goes to."""
        if not isinstance(event, SystemEvent):
            raise InvalidEventError(f"publish takes a SystemEvent, got {type(event).__name__}")
        event_type = event.event_type
        metrics = self._metrics
        cached = self._targets_by_id.get(id(event_type))
        if cached is not None and cached[0] is event_type:  # never ANY: see below
            if metrics is not None:
                metrics.published[cached[2]] += 1
            return cached[1]
        if event_type is _ANY:
            raise InvalidEventError(
                "EventType.ANY is a subscription wildcard; it cannot be published"
            )
        if metrics is not None:
            metrics.published[self._label(event_type)] += 1
        return self.targets_for(event_type)

    def targets_for(self, event_type: EventTypeLike) -> Fanout:
        """The subscriptions an event of ``event_type`` goes to, in subscription order."""
        targets = self._targets.get(event_type)
        if targets is None:
            targets = Fanout(
                tuple(
                    s
                    for s in self._subscriptions.values()
                    if s.sub.event_type is _ANY or s.sub.event_type == event_type
                )
            )
            self._targets[event_type] = targets
            if isinstance(event_type, Enum):
                label = self._label(event_type)
                self._targets_by_id[id(event_type)] = (event_type, targets, label)
        return targets

    def wants(self, label: str) -> bool:
        """Whether any subscription takes events whose type label is ``label``."""
        wanted = self._wanted
        if wanted is None:
            subs = [lane.sub.event_type for lane in self._subscriptions.values()]
            self._wants_any = _ANY in subs
            wanted = self._wanted = frozenset(self._label(t) for t in subs if t is not _ANY)
        return self._wants_any or label in wanted

    def _forget_targets(self) -> None:
        """Drop the cached fan-out lists; the next publish of each type rebuilds them.

        Events of a dropped fan-out still queued count for their lanes until served.
        """
        for fanout in self._targets.values():
            fanout.retire()
        self._targets.clear()
        self._targets_by_id.clear()
        self._wanted = None
