"""The ``router`` service: the user's own handlers, named by module path, run as a service.

``--handler package.module:attribute`` (repeatable; ``router.handlers`` in settings)
names, like uvicorn's ``module:app``, one of:

* a handler: an ``async def h(event)`` or sync function, or a callable object such as
  an :class:`EventRouter` (it receives every event);
* a factory: a class, or a function without required arguments (sync or async), that
  returns a handler, an :class:`EventRouter`, or a list of handlers and
  ``(event_type, handler)`` pairs. A factory's result that is an async context manager
  (it holds a database connection, say) is entered at start and left at stop.

The current directory is importable, as with ``python -m``. Each handler is its own
subscription, so the consumer retries only the one that failed and metrics label
each by name.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Iterable
from contextlib import AsyncExitStack
from typing import Any

from prometheus_client import CollectorRegistry

from agent_events.agent_runtime.errors import ConfigError
from agent_events.consumers.runtime import HandlerSpec
from agent_events.services._base import Service
from agent_events.settings import AgentEventsSettings

__all__ = ["RouterService", "import_object"]


def import_object(path: str) -> Any:
    """The object ``package.module:attribute`` (``attribute`` may be dotted) names."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"handler {path!r} is not package.module:attribute")
    # After installed packages, so a user's `schemas.py` in the working directory never
    # shadows a library (FastAPI projects often have one).
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"handler {path!r}: cannot import {module_name}: {exc}") from exc
    except Exception as exc:
        raise ConfigError(
            f"handler {path!r}: importing {module_name} raised {type(exc).__name__}: {exc}"
        ) from exc
    except SystemExit as exc:  # a module that exits on import must not end the service silently
        raise ConfigError(
            f"handler {path!r}: importing {module_name} called sys.exit({exc.code!r})"
        ) from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(f"handler {path!r}: {module_name} has no {attribute}") from None
    return target


def _is_factory(target: Any) -> bool:
    if inspect.isclass(target):
        return True
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return False
    required = [
        p
        for p in signature.parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return not required


def _specs(path: str, produced: Any) -> list[HandlerSpec]:
    if callable(produced):
        return [produced]
    if isinstance(produced, Iterable) and not isinstance(produced, str | bytes):
        specs: list[HandlerSpec] = []
        for item in produced:
            if callable(item):
                specs.append(item)
            elif isinstance(item, tuple) and len(item) == 2 and callable(item[1]):
                specs.append((item[0], item[1]))
            else:
                raise ConfigError(
                    f"handler {path!r}: the factory returned {item!r}; expected handlers "
                    "or (event_type, handler) pairs"
                )
        return specs
    raise ConfigError(
        f"handler {path!r}: expected a handler, a factory or a list of handlers, got {produced!r}"
    )


class RouterService(Service):
    """Runs the handlers that ``router.handlers`` names."""

    name = "router"

    def __init__(self, settings: AgentEventsSettings, registry: CollectorRegistry) -> None:
        super().__init__(settings, registry)
        self.paths = list(settings.router.handlers)
        if not self.paths:
            raise ConfigError(
                "the router service needs at least one --handler package.module:attribute"
            )
        self._targets = [(path, import_object(path)) for path in self.paths]
        self._specs: list[HandlerSpec] = []
        self._exit = AsyncExitStack()

    async def start(self) -> None:
        """Call the factories (entering async context managers they return)."""
        await self._exit.__aenter__()
        try:
            for path, target in self._targets:
                if not _is_factory(target):
                    self._specs.append(target)
                    continue
                self._specs.extend(_specs(path, await self._produce(path, target)))
        except BaseException:
            await self._exit.aclose()
            raise

    async def _produce(self, path: str, factory: Any) -> Any:
        """What the factory gives (entered, for an async context manager).

        The user's code may raise anything: that is a bad ``--handler``, one line.
        """
        step = "the factory"
        try:
            produced = factory()
            if inspect.isawaitable(produced):
                produced = await produced
            if hasattr(produced, "__aenter__") and hasattr(produced, "__aexit__"):
                step = "entering what the factory returned"
                entered = await self._exit.enter_async_context(produced)
                produced = produced if entered is None else entered
        except Exception as exc:  # noqa: BLE001 (reported as a configuration error)
            raise ConfigError(
                f"handler {path!r}: {step} raised {type(exc).__name__}: {exc}"
            ) from None
        return produced

    async def stop(self) -> None:
        await self._exit.aclose()

    def handlers(self) -> list[HandlerSpec]:
        if not self._specs:
            raise ConfigError("the router service has no handlers: start() it first")
        return list(self._specs)

    async def summary(self) -> dict[str, Any]:
        return {"handlers": self.paths}
