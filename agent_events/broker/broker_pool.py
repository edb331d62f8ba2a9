"""Brokers shared by a whole test session (or any long-lived tool), one per kind, started lazily.

The pool runs every broker on a private event loop in a daemon thread: brokers outlive the
event loops of individual tests, and their start and stop do not depend on pytest-asyncio's
loop scope. Objects it returns (bootstrap strings, a :class:`KafkaCluster`) work from any loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from agent_events.agent_runtime.errors import BrokerUnavailable
from agent_events.broker.capabilities import BrokerCapabilities, probe_capabilities
from agent_events.broker.container import kafka_container
from agent_events.broker.kafka_cluster import KafkaCluster
from agent_events.broker.readiness import metadata_broker_ids
from agent_events.broker.selection import BrokerKind, docker_engine_answers
from agent_events.broker.tansu import TansuBroker

__all__ = ["BrokerPool", "RunningBroker"]

T = TypeVar("T")
_START_S = 300.0  # includes a first Maven fetch


@dataclass(frozen=True, slots=True)
class RunningBroker:
    """A broker the suite runs against."""

    kind: BrokerKind
    """``kafka`` or ``tansu``: what the test may expect of it."""
    bootstrap_servers: str
    source: str
    """Where it comes from: ``env``, ``docker``, ``local`` (our Kafka) or ``tansu``."""


class _LoopThread:
    """An event loop in a daemon thread that owns every broker for the whole session."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="agent-events-brokers", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = _START_S) -> T:
        """Run ``coro`` on the pool's loop and wait for its result (blocking the caller)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self.loop.close()


class BrokerPool:
    """Starts each broker kind at most once and stops them all on :meth:`close`.

    Thread-safe and blocking: call it from synchronous code (pytest fixtures, scripts). A kind
    that failed to start is not retried: later calls re-raise the first error at once.
    ``env_bootstrap`` (``$KAFKA_BOOTSTRAP_SERVERS``) makes the ``kafka`` kind an existing
    broker; otherwise a Docker engine that answers, otherwise Kafka from Maven jars.
    """

    def __init__(self, env_bootstrap: str | None) -> None:
        self._env_bootstrap = env_bootstrap
        self._loop = _LoopThread()
        self._lock = threading.Lock()
        self._brokers: dict[str, RunningBroker] = {}
        self._failures: dict[str, BaseException] = {}
        self._capabilities: dict[str, BrokerCapabilities] = {}
        self._cluster: KafkaCluster | None = None
        self._stops: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._sync_stops: list[Callable[[], object]] = []
        self.timings: list[str] = []

    def get(self, kind: BrokerKind) -> RunningBroker:
        """The running broker of ``kind``, started on first use."""
        with self._lock:
            if kind in self._failures:
                raise self._failures[kind]
            if kind not in self._brokers:
                started = time.monotonic()
                try:
                    self._brokers[kind] = self._start(kind)
                except Exception as exc:
                    self._failures[kind] = exc
                    raise
                source = self._brokers[kind].source
                self.timings.append(
                    f"{kind} ({source}) at {self._brokers[kind].bootstrap_servers}: "
                    f"ready in {time.monotonic() - started:.1f} s"
                )
            return self._brokers[kind]

    def _start(self, kind: BrokerKind) -> RunningBroker:
        if kind == "tansu":
            tansu = TansuBroker()
            self._loop.run(tansu.start())
            self._stops.append(tansu.stop)
            return RunningBroker("tansu", tansu.bootstrap_servers, "tansu")
        if self._env_bootstrap:
            try:
                self._loop.run(metadata_broker_ids(self._env_bootstrap, timeout_s=15.0), 30.0)
            except Exception as exc:
                raise BrokerUnavailable(
                    f"KAFKA_BOOTSTRAP_SERVERS={self._env_bootstrap} does not answer ({exc!r}); "
                    "start that broker or unset the variable"
                ) from exc
            return RunningBroker("kafka", self._env_bootstrap, "env")
        if docker_engine_answers():
            return self._start_docker()
        cluster = KafkaCluster.single()
        self._loop.run(cluster.start())
        self._stops.append(cluster.stop)
        return RunningBroker("kafka", cluster.bootstrap_servers, "local")

    def _start_docker(self) -> RunningBroker:
        container, bootstrap = kafka_container()
        container.start()
        self._sync_stops.append(container.stop)
        self._loop.run(metadata_broker_ids(bootstrap, timeout_s=60.0), 90.0)
        return RunningBroker("kafka", bootstrap, "docker")

    def capabilities(self, running: RunningBroker) -> BrokerCapabilities:
        """What ``running`` can do, probed once."""
        with self._lock:
            key = running.bootstrap_servers
            if key not in self._capabilities:
                self._capabilities[key] = self._loop.run(probe_capabilities(key), 120.0)
            return self._capabilities[key]

    def cluster(self) -> KafkaCluster:
        """The three-node Kafka cluster, started on first use."""
        with self._lock:
            if "cluster" in self._failures:
                raise self._failures["cluster"]
            if self._cluster is None:
                started = time.monotonic()
                cluster = KafkaCluster.three_nodes()
                try:
                    self._loop.run(cluster.start())
                except Exception as exc:
                    self._failures["cluster"] = exc
                    raise
                self._stops.append(cluster.stop)
                self._cluster = cluster
                self.timings.append(
                    f"3-node kafka at {cluster.bootstrap_servers}: "
                    f"ready in {time.monotonic() - started:.1f} s"
                )
            return self._cluster

    def heal_cluster(self) -> None:
        """Restart every node a test left stopped, so the next test finds three nodes."""
        cluster = self._cluster
        if cluster is None:
            return
        for node_id in cluster.node_ids:
            if node_id not in cluster.running_node_ids:
                self._loop.run(cluster.restart_node(node_id))

    def close(self) -> None:
        """Stop every broker this pool started (SIGTERM, then SIGKILL) and its loop."""
        stops, self._stops = self._stops, []
        for stop in reversed(stops):
            with contextlib.suppress(Exception):
                self._loop.run(stop(), 60.0)
        for sync_stop in reversed(self._sync_stops):
            with contextlib.suppress(Exception):
                sync_stop()
        self._loop.close()
