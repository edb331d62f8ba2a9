"""The HTTP endpoint of a service: ``/metrics`` for Prometheus, ``/livez`` and ``/readyz`` for probes.

A few lines of asyncio rather than a web framework: read-only GET routes, served on
127.0.0.1 unless told otherwise, on the service's own loop (a scrape never blocks handlers
for long: rendering the registry is all it does; and a loop that is stuck answers nothing,
which a probe counts as a failure).

* ``/livez``: is the process worth keeping? 200 ``ok``, or 503 ``unhealthy: <reason>``.
* ``/readyz``: is it doing its work now? 200 ``ok``, or 503 ``not ready: <reason>``.
* ``/healthz`` (and ``/health``): an alias of ``/livez``, the path Kubernetes' own
  components and Docker health checks use for liveness.

The reason is one line, as Kubernetes and Docker health checks show it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from agent_events.agent_runtime.errors import ConfigError
from agent_events.agent_runtime.resource import AsyncResource

__all__ = ["HealthCheck", "MetricsServer"]

logger = logging.getLogger(__name__)

HealthCheck = Callable[[], str | None]
"""Returns ``None`` when healthy (or ready), else why not (one line)."""

_LIVENESS_PATHS = ("/livez", "/healthz", "/health")
_NOT_FOUND = b"not found; try /metrics, /livez, /readyz or /healthz\n"

_READ_TIMEOUT_S = 10.0
_MAX_HEADER_LINES = 100


class MetricsServer(AsyncResource):
    """Serves ``registry`` at ``/metrics``, ``health`` at ``/livez`` (and ``/healthz``) and
    ``readiness`` at ``/readyz`` on ``host:port``.

    Without ``readiness``, ``/readyz`` answers what ``health`` does. ``port=0`` picks a free
    port; :attr:`port` tells which once started.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        health: HealthCheck | None = None,
        readiness: HealthCheck | None = None,
    ) -> None:
        self.registry = registry
        self.host = host
        self._requested_port = port
        self._health: HealthCheck = health or (lambda: None)
        self._readiness: HealthCheck = readiness or self._health
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The port it listens on (the chosen one when started with ``port=0``)."""
        if self._server is None or not self._server.sockets:
            return self._requested_port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        if self._server is not None:
            return
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self._requested_port)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {self.host}:{self._requested_port}: {exc.strerror or exc}; "
                "choose another --metrics-port"
            ) from exc

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            async with asyncio.timeout(_READ_TIMEOUT_S):
                request = await reader.readline()
                for _ in range(_MAX_HEADER_LINES):
                    if (await reader.readline()) in (b"\r\n", b"\n", b""):
                        break
            status, content_type, body = self._respond(request)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    def _respond(self, request: bytes) -> tuple[str, str, bytes]:
        parts = request.decode("latin-1").split()
        if len(parts) < 2:
            return "400 Bad Request", "text/plain", b"bad request\n"
        method, path = parts[0], parts[1].split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", "text/plain", b"only GET\n"
        if path == "/metrics":
            body = generate_latest(self.registry)
            return "200 OK", CONTENT_TYPE_LATEST, b"" if method == "HEAD" else body
        if path in _LIVENESS_PATHS:
            return _probe(self._health(), "unhealthy")
        if path == "/readyz":
            return _probe(self._readiness(), "not ready")
        return "404 Not Found", "text/plain", _NOT_FOUND


def _probe(problem: str | None, label: str) -> tuple[str, str, bytes]:
    if problem is None:
        return "200 OK", "text/plain", b"ok\n"
    line = " ".join(problem.split())
    return "503 Service Unavailable", "text/plain", f"{label}: {line}\n".encode()
