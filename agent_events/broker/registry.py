"""A Confluent-compatible schema registry (Apicurio Registry) run as a local process.

:class:`SchemaRegistryServer` starts a runnable Apicurio Registry jar (a Quarkus
``*-runner.jar`` or ``quarkus-run.jar``) on a free loopback port with in-memory storage,
and stops it. The jar is not built here: Maven Central as served to this project has no
runnable Apicurio Registry 3.x (no ``runner`` artifact; 3.3.x lacks about ten modules,
3.0.9 its parent POM and four modules), and assembling one needs code this repository
may not carry. Point ``APICURIO_REGISTRY_JAR`` at a jar you built or downloaded;
``docs/SCHEMA_REGISTRY.md`` says what was measured with one.

Guarantees: ``start`` returns only once the Confluent API answers, and ``stop`` always
reaps the JVM (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path
from typing import Final

import httpx

from agent_events.agent_runtime.errors import BrokerSetupError, ConfigError
from agent_events.agent_runtime.resource import AsyncResource
from agent_events.broker._process import free_port, log_tail, spawn, stop_process
from agent_events.broker.tools import find_java

__all__ = ["APICURIO_JAR_ENV", "CCOMPAT_PATH", "SchemaRegistryServer", "apicurio_jar"]

CCOMPAT_PATH: Final = "/apis/ccompat/v7"
"""Where Apicurio serves the Confluent Schema Registry API."""

APICURIO_JAR_ENV: Final = "APICURIO_REGISTRY_JAR"
"""The environment variable naming a runnable Apicurio Registry jar."""


def apicurio_jar() -> Path | None:
    """The jar ``APICURIO_REGISTRY_JAR`` names, ``None`` if unset; a missing file is a
    :class:`ConfigError`."""
    value = os.environ.get(APICURIO_JAR_ENV)
    if not value:
        return None
    jar = Path(value)
    if not jar.is_file():
        raise ConfigError(f"{APICURIO_JAR_ENV}={value} is not a file; point it at a runner jar")
    return jar


class SchemaRegistryServer(AsyncResource):
    """One Apicurio Registry JVM on ``127.0.0.1:<port>`` with in-memory storage.

    ``async with SchemaRegistryServer(jar, home) as registry:`` starts ``jar``, waits until
    ``GET {CCOMPAT_PATH}/subjects`` answers 200, and stops it on exit. Its data lives only
    as long as the process.
    """

    def __init__(
        self,
        jar: Path,
        home: Path,
        *,
        port: int | None = None,
        ready_timeout_s: float = 120.0,
    ) -> None:
        self.jar = jar
        self.home = home
        self.port = port or free_port()
        self._ready_timeout_s = ready_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self.startup_s: float | None = None
        """Seconds from spawn to the first 200 of the Confluent API (after ``start``)."""

    @property
    def url(self) -> str:
        """The Confluent-compatible base URL, the value for ``schema_registry_url``."""
        return f"http://127.0.0.1:{self.port}{CCOMPAT_PATH}"

    @property
    def log_path(self) -> Path:
        """The registry's console log (Quarkus logs there, access log included)."""
        return self.home / "registry.log"

    @property
    def pid(self) -> int | None:
        """Pid of the JVM while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    async def start(self) -> None:
        """Spawn the JVM and return once the API answers."""
        java = await asyncio.to_thread(find_java)
        self.home.mkdir(parents=True, exist_ok=True)
        argv = [
            java,
            "-Xms64m",
            "-Xmx384m",
            f"-Dquarkus.http.port={self.port}",
            "-Dquarkus.http.host=127.0.0.1",
            "-Dapicurio.datasource.jdbc.initial-size=1",
            "-Dapicurio.datasource.jdbc.min-size=1",
            "-Dapicurio.datasource.jdbc.max-size=20",
            "-jar",
            str(self.jar),
        ]
        started = time.monotonic()
        self._proc = await asyncio.to_thread(
            spawn, argv, cwd=self.home, output=self.log_path, owned=True
        )
        try:
            await self._wait_ready(started + self._ready_timeout_s)
        except BaseException:
            await self.stop()
            raise
        self.startup_s = time.monotonic() - started

    async def _wait_ready(self, deadline: float) -> None:
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.pid is None:
                    raise BrokerSetupError(
                        f"Apicurio Registry exited during start-up; last lines of "
                        f"{self.log_path}:\n{log_tail(self.log_path)}"
                    )
                try:
                    if (await client.get(f"{self.url}/subjects")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        raise BrokerSetupError(
            f"Apicurio Registry on port {self.port} did not answer within "
            f"{self._ready_timeout_s:.0f} s; last lines of {self.log_path}:\n"
            f"{log_tail(self.log_path)}"
        )

    async def stop(self) -> None:
        """SIGTERM the JVM, SIGKILL after 15 s; safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None:
            await asyncio.to_thread(stop_process, proc)
