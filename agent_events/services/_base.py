"""What every consumer service is: handlers, the resources they need, what they computed.

A :class:`Service` is the *definition*; :class:`~agent_events.services.host.ServiceHost`
is the machinery that runs one in a consumer group (metrics, health, signals). A
service is built from the settings and the process's metrics registry, so adding one
to the registry is one line: ``SERVICES["name"] = MyService``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from aiokafka.structs import TopicPartition
from prometheus_client import CollectorRegistry

from agent_events.agent_runtime.event_bus import Handler
from agent_events.agent_runtime.events import SystemEvent
from agent_events.agent_runtime.resource import AsyncResource
from agent_events.agent_runtime.subscription import handler_name
from agent_events.consumers.config import ConsumerConfig
from agent_events.consumers.runtime import HandlerSpec
from agent_events.settings import AgentEventsSettings

__all__ = ["GroupMember", "NamedHandler", "Service", "ServiceBuilder"]


class GroupMember(Protocol):
    """What the host drives: :class:`ConsumerService`, or a service's own member."""

    rebalances: int
    rebalancing: bool
    fenced: bool

    @property
    def assignment(self) -> set[TopicPartition]: ...

    async def start(self) -> None: ...

    async def run(self) -> None: ...

    def request_stop(self) -> None: ...

    async def stop(self) -> None: ...


class Service(AsyncResource):
    """A consumer service: subclasses set :attr:`name` and return their :meth:`handlers`.

    ``start`` opens what the handlers need (a database, an HTTP client) before the
    consumer joins its group; ``stop`` closes it after the consumer has drained and
    committed. ``summary`` is what the service computed, as JSON-able data: logged
    every ``report_interval_s``, written to ``summary_file``, shown by the demo.
    """

    name: ClassVar[str]

    def __init__(self, settings: AgentEventsSettings, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.registry = registry

    @property
    def default_group(self) -> str:
        """The consumer group when ``group_id`` is not set: one group per service."""
        return f"agent-events-{self.name}"

    def handlers(self) -> list[HandlerSpec]:
        """The handlers to subscribe (a bare handler gets every event)."""
        raise NotImplementedError

    def member(self, config: ConsumerConfig) -> GroupMember | None:
        """A service that consumes for itself returns its group member (built from
        ``config``); ``None`` (the default): the host runs :meth:`handlers` in a
        :class:`ConsumerService`. The windowed aggregation is such a service."""
        return None

    async def summary(self) -> dict[str, Any]:
        """What the service computed so far (JSON-able)."""
        return {}

    async def start(self) -> None:
        """Open resources; the default has none."""

    async def stop(self) -> None:
        """Close resources; the default has none."""


ServiceBuilder = Callable[[AgentEventsSettings, CollectorRegistry], Service]
"""Builds a service from the settings and the registry its own metrics go to."""


class NamedHandler:
    """A handler under a name of our choosing, for metric labels and DLQ headers.

    Two handlers of one class (the alerting service's log and webhook handlers)
    would otherwise share one ``handler`` label.
    """

    def __init__(self, name: str, handler: Handler) -> None:
        self.__qualname__ = name
        self.handler = handler

    async def __call__(self, event: SystemEvent) -> None:
        result = self.handler(event)
        if inspect.isawaitable(result):
            await result

    def __repr__(self) -> str:
        return f"NamedHandler({self.__qualname__!r}, {handler_name(self.handler)})"
