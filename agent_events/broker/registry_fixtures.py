"""Pytest fixture for a real schema registry: Apicurio Registry started by our own code.

A pytest plugin (entry point ``pytest11``), kept apart from ``pytest_fixtures`` so that a
session that never asks for a registry never starts one. Nothing in the product imports it.

* ``schema_registry`` (session): a running :class:`SchemaRegistryServer` on a free loopback
  port, from the jar ``APICURIO_REGISTRY_JAR`` names; ``schema_registry.url`` is the
  value for ``schema_registry_url``. Without that variable the tests that need a registry
  are skipped, saying so (see :mod:`agent_events.broker.registry` for why no jar is built
  here). Storage is in memory: subjects registered by one test are seen by the next, so
  use unique topic names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from agent_events.broker._process import make_temp_dir, remove_temp_dir
from agent_events.broker.registry import APICURIO_JAR_ENV, SchemaRegistryServer, apicurio_jar

__all__ = ["SchemaRegistryServer", "schema_registry"]


@pytest.fixture(scope="session")
def schema_registry() -> Iterator[SchemaRegistryServer]:
    """A real Apicurio Registry (Confluent API) for the whole test session."""
    jar = apicurio_jar()
    if jar is None:
        pytest.skip(f"no schema registry: set {APICURIO_JAR_ENV} to a runnable Apicurio jar")
    home = make_temp_dir("agent-events-registry-")
    server = SchemaRegistryServer(jar, home)
    # Own short-lived loops: the JVM is a process, not tied to any test's event loop.
    asyncio.run(server.start())
    try:
        yield server
    finally:
        asyncio.run(server.stop())
        remove_temp_dir(home)
