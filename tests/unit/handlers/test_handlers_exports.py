"""The public surface of consumers.handlers is complete and importable."""

from __future__ import annotations

import importlib
import pkgutil

import agent_events.consumers.handlers as handlers


def test_every_public_name_of_every_module_is_exported() -> None:
    exported = set(handlers.__all__)
    for module_info in pkgutil.iter_modules(handlers.__path__):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"agent_events.consumers.handlers.{module_info.name}")
        missing = set(getattr(module, "__all__", ())) - exported
        assert not missing, f"{module_info.name} exports {missing} but the package does not"


def test_every_exported_name_exists() -> None:
    for name in handlers.__all__:
        assert hasattr(handlers, name), name
