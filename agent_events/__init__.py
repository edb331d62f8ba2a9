"""agent-events: the application layer (settings, the ``agent-events`` CLI, local brokers).

Import the pieces from their packages (``agent_events.broker`` ...); this root module only
carries the distribution's version.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__: str = version("agent-events")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
