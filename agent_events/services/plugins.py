"""Services that other packages add, through the ``agent_events.services`` entry points.

An installed package declares in its ``pyproject.toml``::

    [project.entry-points."agent_events.services"]
    billing = "billing.service:app"

and ``agent-events consume billing`` runs it, with no change to this package. The entry
point names an :class:`~agent_events.app.App` or a
:data:`~agent_events.services.ServiceBuilder` (``callable(settings, registry) ->
Service``, like the values of ``SERVICES``). Names are listed without importing any
plugin, and a plugin is imported only when it is run: one broken plugin does not stop
the others, nor the built-in services. A built-in service keeps its name: a plugin of
the same name is ignored, with one warning.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points

from agent_events.agent_runtime.errors import ConfigError
from agent_events.services._base import ServiceBuilder

__all__ = ["ENTRY_POINT_GROUP", "load_plugin", "plugin_names", "resolve_builder"]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "agent_events.services"

_warned: set[str] = set()


def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry)  # the first on sys.path wins, as for imports
    return found


def plugin_names() -> list[str]:
    """The names installed packages declare in ``agent_events.services``, sorted."""
    return sorted(_entry_points())


def load_plugin(name: str) -> ServiceBuilder | None:
    """The builder of plugin ``name`` (``None`` if none is installed); an :class:`App`
    is wrapped. A plugin that cannot be imported, or names something else, raises
    :class:`ConfigError` naming the entry point."""
    entry = _entry_points().get(name)
    if entry is None:
        return None
    where = f"service plugin {name!r} ({entry.value})"
    try:
        target = entry.load()
    except Exception as exc:
        raise ConfigError(f"{where}: importing it raised {type(exc).__name__}: {exc}") from exc
    # Imported here: agent_events.app builds on this package, not the other way round.
    from agent_events.app import App

    if isinstance(target, App):
        return target.build_service
    if callable(target):
        builder: ServiceBuilder = target
        return builder
    raise ConfigError(
        f"{where} is {type(target).__name__}; point it to an App or to a "
        "callable(settings, registry) that returns a Service"
    )


def resolve_builder(name: str, builtin: Mapping[str, ServiceBuilder]) -> ServiceBuilder:
    """The builder of service ``name``: a built-in one first, then a plugin.

    :class:`ConfigError` for an unknown name lists the built-in services and the plugins.
    """
    found = builtin.get(name)
    if found is not None:
        if name not in _warned and name in _entry_points():
            _warned.add(name)
            logger.warning(
                "a service plugin is also called %r; the built-in service runs, not the plugin",
                name,
            )
        return found
    plugin = load_plugin(name)
    if plugin is not None:
        return plugin
    plugins = [p for p in plugin_names() if p not in builtin]
    listed = f"; plugins: {', '.join(plugins)}" if plugins else ""
    raise ConfigError(f"unknown service {name!r}; choose one of: {', '.join(builtin)}{listed}")
