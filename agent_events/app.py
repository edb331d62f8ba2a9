"""``App``: a service of your own, declared with decorators, run like the built-in ones.

An :class:`App` is a *definition* (handlers by event type, hooks, sinks, consumer
tuning); two runtimes take it unchanged:

* Kafka: ``agent-events run module:app`` (or an ``agent_events.services`` entry point
  and ``agent-events consume NAME``) wraps it in an :class:`AppService`, a
  :class:`~agent_events.services.Service`, so it gets exactly what the built-in services
  get: settings, consumer group, retries, DLQ, metrics, health endpoints, SIGTERM drain.
* In process: ``async with app.on_bus(bus)`` subscribes the same handlers on an
  :class:`~agent_events.agent_runtime.event_bus.EventBus` (tests, a single process).

Retries, ordering, the DLQ and the handler timeout are the consumer's
(:class:`~agent_events.consumers.config.ConsumerTuning`, per consumer group), not per
handler: the runtime retries a record's failed handlers together and commits a record
once all its handlers are done.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import EllipsisType
from typing import Any, ClassVar, TypeAlias, TypeVar, Unpack, cast

from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from agent_events.agent_runtime.errors import ConfigError
from agent_events.agent_runtime.event_bus import EventBus, Handler
from agent_events.agent_runtime.events import EventType, EventTypeLike, SystemEvent
from agent_events.agent_runtime.subscription import Subscription, handler_name, type_label
from agent_events.consumers.config import (
    DEFAULT_DLQ_TOPIC,
    ConsumerConfig,
    ConsumerTuning,
    ConsumerTuningOptions,
)
from agent_events.consumers.runtime import HandlerSpec
from agent_events.consumers.windows import (
    GuaranteeSetting,
    Reducer,
    WindowMetricsCollector,
    WindowProcessor,
    WindowSettings,
)
from agent_events.consumers.windows.codec import AggregateEncoder
from agent_events.producers.config import DEFAULT_TOPIC
from agent_events.services._base import GroupMember, Service
from agent_events.services.aggregate import window_processor
from agent_events.settings import AgentEventsSettings

__all__ = ["App", "AppService", "ConsumerTuningOptions", "Hook", "Sink"]

Hook: TypeAlias = Callable[[], Awaitable[object] | object]
"""A startup or shutdown hook: a function without arguments, sync or ``async``."""

Sink: TypeAlias = Callable[[SystemEvent, object], Awaitable[object]]
"""``async def sink(event, result)``: receives what a handler returned (when not ``None``)."""

HandlerT = TypeVar("HandlerT", bound=Handler)
ReduceT = TypeVar("ReduceT", bound=Callable[[Any, SystemEvent], Any])
HookT = TypeVar("HookT", bound=Hook)
SinkT = TypeVar("SinkT", bound=Sink)


@dataclass(slots=True)
class _Window:
    """An app's windowed aggregation: settings, reducers, and how results are written."""

    section: WindowSettings
    reducers: list[Reducer[Any]]
    output_codec: AggregateEncoder | None


@dataclass(frozen=True, slots=True)
class _Route:
    event_type: EventTypeLike
    handler: Handler


class App:
    """Handlers of one consumer group, declared with decorators::

        app = App("billing", topic="agent.events")

        @app.handler(EventType.AGENT_COMPLETED)
        async def charge(event: SystemEvent) -> None: ...

    ``name`` names the service (logs, summary) and its default consumer group,
    ``agent-events-NAME``. ``topic``, ``group_id``, ``dlq_topic`` and the consumer's
    tuning (``ordering``, ``max_retries``, ``handler_timeout_s``, ... the ``[consumer]``
    settings, validated here) are defaults: a command-line flag, an ``AGENT_EVENTS_*``
    variable or the config file overrides each (a top-level setting given as its
    built-in default counts as not given).
    """

    def __init__(
        self,
        name: str,
        *,
        topic: str | None = None,
        group_id: str | None = None,
        dlq_topic: str | EllipsisType | None = ...,
        **consumer: Unpack[ConsumerTuningOptions],
    ) -> None:
        if not name.strip():
            raise ConfigError("an App needs a name (it names the service and its group)")
        self.name = name
        self.topic = topic
        self.group_id = group_id
        self.dlq_topic = dlq_topic
        try:
            self.consumer = ConsumerTuning(**consumer)
        except ValidationError as exc:
            raise ConfigError(f"app {name!r}: {_first_error(exc)}") from None
        self._routes: list[_Route] = []
        self._startup: list[Hook] = []
        self._shutdown: list[Hook] = []
        self._sinks: list[Sink] = []
        self._window: _Window | None = None

    def __repr__(self) -> str:
        return f"App({self.name!r}, handlers={len(self._routes)})"

    # ------------------------------------------------------------------ declaring

    def handler(self, *event_types: EventTypeLike) -> Callable[[HandlerT], HandlerT]:
        """Register the decorated function for ``event_types`` (none given: every event).

        A type is an :class:`EventType` member, ``EventType.ANY``, a member of your own
        ``Enum`` or a :class:`ForeignEventType`, as for ``EventBus.subscribe``; a wrong
        one raises :class:`SubscriptionError` here, at import, not at the first event.
        The function is returned unchanged, so it can still be called directly.
        """
        types = event_types or (EventType.ANY,)

        def register(function: HandlerT) -> HandlerT:
            for event_type in types:
                Subscription("check", event_type, function, None)  # the bus's own validation
                self._routes.append(_Route(event_type, function))
            return function

        return register

    def on_startup(self, hook: HookT) -> HookT:
        """Run ``hook`` before the consumer joins its group (or before ``on_bus`` subscribes)."""
        self._startup.append(hook)
        return hook

    def on_shutdown(self, hook: HookT) -> HookT:
        """Run ``hook`` after the consumer drained and committed; hooks run in reverse order."""
        self._shutdown.append(hook)
        return hook

    def sink(self, sink: SinkT) -> SinkT:
        """Pass every non-``None`` result of a handler to ``sink(event, result)``.

        The sink runs inside the handler's call: a sink that raises fails that handler,
        which the consumer then retries (handler and sink again) and dead-letters like
        any failure, so a sink sees each result at least once.
        """
        self._sinks.append(sink)
        return sink

    def window(
        self,
        window: str,
        *,
        grace: str = "0s",
        key: Sequence[str] | None = None,
        output_topic: str | None = None,
        late_topic: str | None = None,
        emit_on_update: bool = False,
        processing_guarantee: GuaranteeSetting = "auto",
        reducers: Sequence[Reducer[Any]] = (),
        output_codec: AggregateEncoder | None = None,
        initial: Callable[[], Any] = int,
        merge: Callable[[Any, Any], Any] | None = None,
    ) -> Callable[[ReduceT], ReduceT]:
        """Declare this app's windowed aggregation; decorate functions to add reducers.

        ``window`` is ``tumbling:60s``, ``hopping:60s/10s``, ``sliding:60s`` or
        ``session:30m``; the other settings are the ``aggregate`` service's (``key``: the
        key fields). Each decorated ``f(value, event) -> value`` becomes a
        :class:`Reducer` named ``f.__name__`` starting at ``initial()`` (``merge`` is
        needed by sliding and session windows). Call it again only with the same
        settings: an app is one consumer group, so it has one window. An app with a
        window runs on Kafka only (its state is in a changelog topic), and has no handlers.
        """
        given = {
            "window": window,
            "grace": grace,
            "key_fields": tuple(key) if key is not None else None,
            "output_topic": output_topic,
            "late_topic": late_topic,
            "emit_on_update": emit_on_update,
            "processing_guarantee": processing_guarantee,
        }
        try:
            section = WindowSettings(**{k: v for k, v in given.items() if v is not None})
        except ValidationError as exc:
            raise ConfigError(f"app {self.name!r}: window: {_first_error(exc)}") from None
        declared = self._window
        if declared is None:
            declared = self._window = _Window(section, list(reducers), output_codec)
        elif declared.section != section:
            raise ConfigError(
                f"app {self.name!r} already has the window {declared.section.window}; "
                "an app has one window (one consumer group): use a second App"
            )
        else:
            declared.reducers.extend(reducers)
            declared.output_codec = output_codec or declared.output_codec

        def add_reducer(function: ReduceT) -> ReduceT:
            name = getattr(function, "__name__", handler_name(function))
            assert declared is not None
            declared.reducers.append(Reducer(name, initial=initial, add=function, merge=merge))
            return function

        return add_reducer

    @property
    def declared_window(self) -> _Window | None:
        """What :meth:`window` declared, if anything."""
        return self._window

    # ------------------------------------------------------------------ running

    def handler_specs(self) -> list[HandlerSpec]:
        """The ``(event_type, handler)`` pairs a :class:`ConsumerService` subscribes."""
        return [(route.event_type, self._callable(route.handler)) for route in self._routes]

    async def startup(self) -> None:
        """Run the startup hooks in order; a failing hook raises :class:`ConfigError`
        (one line from the CLI) and the app does not start, so no shutdown hook runs."""
        for hook in self._startup:
            await _call_hook(self.name, "startup", hook)

    async def shutdown(self) -> None:
        """Run every shutdown hook (last registered first); re-raise the first failure."""
        failure: ConfigError | None = None
        for hook in reversed(self._shutdown):
            try:
                await _call_hook(self.name, "shutdown", hook)
            except ConfigError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    @asynccontextmanager
    async def on_bus(self, bus: EventBus) -> AsyncIterator[EventBus]:
        """Run the app in process: startup hooks, subscribe every handler on ``bus``.

        On exit, each subscription is drained (events published before are handled),
        then the shutdown hooks run. ``consumer.handler_timeout_s``, if set, applies
        as on Kafka; otherwise the bus's own timeout does. An app with a window refuses
        (:class:`ConfigError`): its state lives in Kafka.
        """
        if self._window is not None:
            raise ConfigError(
                f"app {self.name!r} has a window, whose state lives in a Kafka changelog "
                "topic; run it with agent-events run"
            )
        timeout: float | EllipsisType | None = ...
        if "handler_timeout_s" in self.consumer.model_fields_set:
            timeout = self.consumer.handler_timeout_s
        await self.startup()
        ids: list[str] = []
        try:
            for route in self._routes:
                handler = self._callable(route.handler)
                ids.append(await bus.subscribe(route.event_type, handler, handler_timeout=timeout))
            yield bus
        finally:
            try:
                for sub_id in ids:
                    await bus.unsubscribe(sub_id, drain=True)
            finally:
                await self.shutdown()

    def settings_for(self, settings: AgentEventsSettings) -> AgentEventsSettings:
        """``settings`` with this app's defaults filled in where the user gave nothing."""
        given = settings.consumer.model_dump(exclude_unset=True)
        update: dict[str, Any] = {
            "consumer": ConsumerTuning(**{**self.consumer.model_dump(exclude_unset=True), **given})
        }
        if self.topic is not None and settings.topic == DEFAULT_TOPIC:
            update["topic"] = self.topic
        if not isinstance(self.dlq_topic, EllipsisType) and settings.dlq_topic == DEFAULT_DLQ_TOPIC:
            update["dlq_topic"] = self.dlq_topic
        merged = settings.model_copy(update=update)
        try:
            merged.consumer_config(self.group_id or f"agent-events-{self.name}")
        except ValidationError as exc:
            raise ConfigError(f"app {self.name!r}: invalid setting: {_first_error(exc)}") from None
        return merged

    def build_service(
        self, settings: AgentEventsSettings, registry: CollectorRegistry | None = None
    ) -> AppService:
        """This app as a :class:`Service` (so ``app.build_service`` is a ``ServiceBuilder``)."""
        named = cast(
            type[AppService], type(f"{self.name}Service", (AppService,), {"name": self.name})
        )
        return named(self, settings, registry if registry is not None else CollectorRegistry())

    def _callable(self, handler: Handler) -> Handler:
        return _SinkingHandler(handler, tuple(self._sinks)) if self._sinks else handler

    def describe(self) -> list[str]:
        """``event_type -> handler`` for each registration (the service's summary)."""
        return [f"{type_label(r.event_type)} -> {handler_name(r.handler)}" for r in self._routes]


class AppService(Service):
    """An :class:`App` as a :class:`Service`: the host runs it like a built-in service."""

    name: ClassVar[str] = "app"

    def __init__(
        self, app: App, settings: AgentEventsSettings, registry: CollectorRegistry
    ) -> None:
        super().__init__(app.settings_for(settings), registry)
        self.app = app
        self.processor: WindowProcessor | None = None

    @property
    def default_group(self) -> str:
        return self.app.group_id or f"agent-events-{self.app.name}"

    def handlers(self) -> list[HandlerSpec]:
        specs, window = self.app.handler_specs(), self.app.declared_window
        if window is not None:
            if specs:
                raise ConfigError(
                    f"app {self.app.name!r} has handlers and a window; each is its own "
                    "consumer group: put them in two Apps"
                )
            return []  # the window processor consumes for itself, see member()
        if not specs:
            raise ConfigError(
                f"app {self.app.name!r} has no handlers; add @app.handler(...) or app.window(...)"
            )
        return specs

    def member(self, config: ConsumerConfig) -> GroupMember | None:
        """The app's window processor, when it declares a window; else the host's default."""
        window = self.app.declared_window
        if window is None:
            return None
        self.handlers()  # refuses handlers and a window together
        processor = window_processor(
            self.settings,
            config,
            window.section,
            reducers=tuple(window.reducers),
            output_codec=window.output_codec,
        )
        self.registry.register(WindowMetricsCollector(config.group_id, processor.metrics_snapshot))
        self.processor = processor
        return processor

    async def start(self) -> None:
        await self.app.startup()

    async def stop(self) -> None:
        await self.app.shutdown()

    async def summary(self) -> dict[str, Any]:
        found: dict[str, Any] = {"app": self.app.name, "handlers": self.app.describe()}
        if self.processor is not None:
            found["window"] = str(self.processor.config.definition)
            found.update(dataclasses.asdict(self.processor.metrics_snapshot()))
        return found


class _SinkingHandler:
    """A handler whose non-``None`` result goes to the app's sinks, under the handler's name."""

    def __init__(self, handler: Handler, sinks: tuple[Sink, ...]) -> None:
        self.__qualname__ = handler_name(handler)
        self.handler = handler
        self.sinks = sinks

    async def __call__(self, event: SystemEvent) -> object:
        result = self.handler(event)
        if inspect.isawaitable(result):
            result = await result
        if result is not None:
            for sink in self.sinks:
                await sink(event, result)
        return result


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


async def _call_hook(app: str, when: str, hook: Hook) -> None:
    """Call a user's hook; whatever it raises becomes one :class:`ConfigError` line."""
    try:
        result = hook()
        if inspect.isawaitable(result):
            await result
    except Exception as exc:
        raise ConfigError(
            f"app {app!r}: {when} hook {handler_name(hook)} raised {type(exc).__name__}: {exc}"
        ) from exc
